"""Chat templates of the tool-calling families, as test data, and tiny models whose tokenizers have their tokens.

Each template follows its family's published convention (the special tokens, where the tools go, how a call and a
result are written) in our own words; none is a copy. What each family's model writes to call a tool:

- hermes (Qwen2.5/Qwen3, Hermes): `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`; tools in the system
  message inside `<tools></tools>`; results in a user turn inside `<tool_response>`. `<tool_call>` and its kin are
  added tokens that are not "special" (Qwen's tokenizer marks them so), so they decode as text.
- llama3 (Llama 3.1/3.2/3.3): the bare JSON `{"name": ..., "parameters": {...}}` (or after `<|python_tag|>`); tools
  in the first user message; results in an `ipython` turn.
- mistral (v0.3 / Nemo / Ministral): `[TOOL_CALLS][{"name": ..., "arguments": {...}}]`; tools in
  `[AVAILABLE_TOOLS]` before the last user turn; results in `[TOOL_RESULTS]` with a 9-character call id.
- mistral_v11 (Ministral 3, Mistral Small 3.2, Devstral; tokenizer v11 on): `[TOOL_CALLS]name[ARGS]{...}` per call;
  the system prompt in `[SYSTEM_PROMPT]`, tools in `[AVAILABLE_TOOLS]`, results in `[TOOL_RESULTS]`.
- phi4 (Phi-4-mini): `<|tool_call|>[...]<|/tool_call|>`; tools as a JSON string in the system message's `tools`
  field, between `<|tool|>` and `<|/tool|>`.
- granite (Granite 3.x): `<|tool_call|>[...]`; tools in an `available_tools` role turn.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

HERMES = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nThese functions are available, described inside <tools></tools>:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nTo call one, write its name and arguments as JSON between <tool_call></tool_call> tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for call in message.tool_calls %}
            {%- if call.function is defined %}
                {%- set call = call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' + call.name + '", "arguments": ' + call.arguments | tojson + '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or messages[loop.index0 - 1].role != "tool" %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != "tool" %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}"""

LLAMA3 = r"""{{- bos_token }}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "01 Jan 2025" %}
    {%- endif %}
{%- endif %}
{%- if messages[0].role == 'system' %}
    {%- set system_message = messages[0].content | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message + "<|eot_id|>" }}
{%- if tools is not none %}
    {%- if messages | length == 0 %}
        {{- raise_exception("the tools go into the first user message, and there is none") }}
    {%- endif %}
    {%- set first_user_message = messages[0].content | trim %}
    {%- set messages = messages[1:] %}
    {{- "<|start_header_id|>user<|end_header_id|>\n\n" }}
    {{- 'When one of these functions helps, answer with only a JSON object {"name": function name, "parameters": object of argument values}.\n\n' }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) + "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>" }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'tool' or message.role == 'ipython' %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" + message.content + "<|eot_id|>" }}
    {%- elif message.tool_calls %}
        {%- if message.tool_calls | length != 1 %}
            {{- raise_exception("one tool call per turn") }}
        {%- endif %}
        {%- set call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "' + call.name + '", "parameters": ' + call.arguments | tojson + '}<|eot_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + message.content | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}"""

MISTRAL = r"""{%- if messages[0].role == "system" %}
    {%- set system_message = messages[0].content %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message.role == "user" %}
        {%- if tools is not none and message == user_messages[-1] %}
            {{- "[AVAILABLE_TOOLS]" + tools | tojson + "[/AVAILABLE_TOOLS]" }}
        {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST]" + system_message + "\n\n" + message.content + "[/INST]" }}
        {%- else %}
            {{- "[INST]" + message.content + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls %}
        {{- "[TOOL_CALLS][" }}
        {%- for call in message.tool_calls %}
            {%- if call.id is not defined or call.id | length != 9 %}
                {{- raise_exception("a tool call id must be 9 letters or digits") }}
            {%- endif %}
            {{- '{"name": "' + call.function.name + '", "arguments": ' + call.function.arguments | tojson + ', "id": "' + call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- endif %}
        {%- endfor %}
        {{- "]" + eos_token }}
    {%- elif message.role == "assistant" %}
        {{- message.content + eos_token }}
    {%- elif message.role == "tool" %}
        {%- if message.tool_call_id is not defined or message.tool_call_id | length != 9 %}
            {{- raise_exception("a tool result needs the 9-character id of its call") }}
        {%- endif %}
        {{- '[TOOL_RESULTS]{"content": ' + message.content | tojson + ', "call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("roles are system (first), user, assistant and tool") }}
    {%- endif %}
{%- endfor %}"""

MISTRAL_V11 = r"""{%- if messages[0].role == "system" %}
    {%- set system_message = messages[0].content %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = "You are a helpful assistant." %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- set tools_block = "" %}
{%- if tools is defined and tools %}
    {%- set tools_block = "[AVAILABLE_TOOLS]" + tools | tojson + "[/AVAILABLE_TOOLS]" %}
{%- endif %}
{%- set ns = namespace(last_user=-1) %}
{%- for message in loop_messages %}
    {%- if message.role == "user" %}
        {%- set ns.last_user = loop.index0 %}
    {%- endif %}
{%- endfor %}
{{- bos_token + "[SYSTEM_PROMPT]" + system_message + "[/SYSTEM_PROMPT]" }}
{%- for message in loop_messages %}
    {%- if message.role == "user" %}
        {%- if loop.index0 == ns.last_user %}
            {{- tools_block }}
        {%- endif %}
        {{- "[INST]" + message.content + "[/INST]" }}
    {%- elif message.role == "assistant" %}
        {%- if message.content %}
            {{- message.content }}
        {%- endif %}
        {%- if message.tool_calls is defined and message.tool_calls %}
            {%- for call in message.tool_calls %}
                {%- set arguments = call.function.arguments %}
                {%- if arguments is not string %}
                    {%- set arguments = arguments | tojson %}
                {%- endif %}
                {{- "[TOOL_CALLS]" + call.function.name + "[ARGS]" + arguments }}
            {%- endfor %}
        {%- endif %}
        {{- eos_token }}
    {%- elif message.role == "tool" %}
        {{- "[TOOL_RESULTS]" + message.content | string + "[/TOOL_RESULTS]" }}
    {%- else %}
        {{- raise_exception("roles are system (first), user, assistant and tool") }}
    {%- endif %}
{%- endfor %}"""

PHI4 = r"""{%- for message in messages %}
    {%- if message.role == 'system' and message.tools is defined and message.tools %}
        {{- '<|system|>' + message.content + '<|tool|>' + message.tools + '<|/tool|><|end|>' }}
    {%- else %}
        {{- '<|' + message.role + '|>' + message.content + '<|end|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|assistant|>' }}
{%- else %}
    {{- eos_token }}
{%- endif %}"""

GRANITE = r"""{%- if tools and not available_tools %}
    {%- set available_tools = tools %}
{%- endif %}
{%- if messages[0].role == 'system' %}
    {%- set system_message = messages[0].content %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = "You are Granite, an AI assistant." %}
    {%- if available_tools %}
        {%- set system_message = system_message + " You can use the tools listed below. When one is needed, answer only with <|tool_call|> and a JSON list of the calls." %}
    {%- endif %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\n' }}
{%- if available_tools %}
    {{- '<|start_of_role|>available_tools<|end_of_role|>' + available_tools | tojson(indent=4) + '<|end_of_text|>\n' }}
{%- endif %}
{%- for message in loop_messages %}
    {{- '<|start_of_role|>' + message.role + '<|end_of_role|>' + message.content + '<|end_of_text|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_of_role|>assistant<|end_of_role|>' }}
{%- endif %}"""


@dataclass(frozen=True)
class Family:
    """A family's template and tokenizer: `special` tokens (index 0 is BOS, index 2 EOS, as the tiny config says),
    and `plain` added tokens that decode as text (not "special")."""

    name: str
    template: str
    special: tuple[str, ...]
    plain: tuple[str, ...] = ()


FAMILIES = {
    "hermes": Family("hermes", HERMES, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                     ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")),
    "llama3": Family("llama3", LLAMA3, ("<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>", "<|end_header_id|>",
                                        "<|python_tag|>", "<|eom_id|>")),
    "mistral": Family("mistral", MISTRAL, ("<s>", "<unk>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]",
                                           "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
                                           "[/TOOL_RESULTS]")),
    "mistral_v11": Family("mistral_v11", MISTRAL_V11, ("<s>", "<unk>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]",
                                                   "[/SYSTEM_PROMPT]", "[TOOL_CALLS]", "[ARGS]", "[AVAILABLE_TOOLS]",
                                                   "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]")),
    "phi4": Family("phi4", PHI4, ("<|endoftext|>", "<|system|>", "<|end|>", "<|user|>", "<|assistant|>", "<|tool|>",
                                  "<|/tool|>", "<|tool_call|>", "<|/tool_call|>", "<|tool_response|>")),
    "granite": Family("granite", GRANITE, ("<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>")),
}


def family_tokenizer(folder: Path, family: Family) -> None:
    """A byte-level BPE like tests.tiny_models' (pydoc text), with the family's tokens and chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    from tests.tiny_models import VOCAB_SIZE, training_text

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE - len(family.plain), special_tokens=list(family.special),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(training_text(), trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.plain])
    tokenizer.save(str(folder / "tokenizer.json"))
    bos, eos = family.special[0], family.special[2]
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos, "unk_token": bos,
        "pad_token": bos, "add_bos_token": family.name in ("llama3", "mistral", "mistral_v11"), "model_max_length": 512,
        "chat_template": family.template}))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": bos, "eos_token": eos}))


def family_gguf(weights: Path, family: Family, folder: Path) -> Path:
    """The tiny random llama in `weights` with `family`'s tokenizer and template, as an f16 GGUF."""
    from quantize.hf_to_gguf import convert_hf_to_gguf

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(weights / name, folder / name)
    family_tokenizer(folder, family)
    return convert_hf_to_gguf(folder, folder / f"tiny-{family.name}.gguf", "f16").path
