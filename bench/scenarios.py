"""Scenario benchmarks: real prompts of the kinds local apps send, decoded plainly and with lookup decoding.

`run_scenarios(model, ["rag", "summarize", "rewrite", "chat"])` answers each shipped prompt (bench/scenarios/*.json:
an answer grounded in retrieved notes, a summary of a document, a rewrite of a code snippet, open chat) greedily,
once per mode, alternating the modes over the repetitions so a busy machine slows both alike, and reports side by
side: decode tok/s, TTFT, drafted/accepted tokens, the speed-up, and whether the outputs are token-identical.

`verify_costs(model)` measures what a verify batch of k tokens costs against one token (the shape probe stands in
for an 8B model), and `project` combines that with the acceptance measured on a real model: a prediction, labelled
as such, of lookup decoding's tok/s on an 8B-class model.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Sequence

import ondevice
from ondevice import SamplingParams
from ondevice.errors import InvalidInput, UnsupportedOperation
from bench.interleave import interleave
from ondevice.decoding.speculative import MAX_DRAFT, NgramDrafter

SCENARIOS = ("rag", "summarize", "rewrite", "chat")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    system: str
    user: str


def load_scenario(name: str) -> Scenario:
    """One shipped scenario by name."""
    if name not in SCENARIOS:
        raise InvalidInput(f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}")
    data = json.loads(resources.files("bench").joinpath("scenarios", f"{name}.json").read_text(encoding="utf-8"))
    return Scenario(data["name"], data["description"], data.get("system", ""), data["user"])


def scenario_prompt(model: ondevice.Model, scenario: Scenario) -> str:
    """The prompt in the model's chat template, or as plain text for a base model without one."""
    messages = ([{"role": "system", "content": scenario.system}] if scenario.system else []) + \
        [{"role": "user", "content": scenario.user}]
    try:
        return model.render_chat(messages)
    except UnsupportedOperation:
        return (scenario.system + "\n\n" if scenario.system else "") + scenario.user + "\n\nAnswer:\n"


@dataclass
class ModeRun:
    """One decoding mode on one scenario (medians over the repetitions)."""

    mode: str
    completion_tokens: int
    decode_tok_s: float
    ttft_ms: float
    drafted_tokens: int
    accepted_tokens: int
    samples_tok_s: list[float] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else 0.0


@dataclass
class ScenarioResult:
    scenario: str
    plain: ModeRun
    lookup: ModeRun
    identical: bool          # the two modes produced the same tokens (temperature 0)
    text: str                # the plain answer, for the reader to judge
    copy_bound: float = 1.0  # the speed-up if a verify batch cost one token (`copy_bound`): what the text allows
    round_speedups: list[float] = field(default_factory=list)  # lookup / plain tok/s of each interleaved round

    @property
    def speedup(self) -> float:
        return self.lookup.decode_tok_s / self.plain.decode_tok_s if self.plain.decode_tok_s else 0.0


@dataclass
class ScenarioReport:
    model: str
    threads: int | None
    max_tokens: int
    lookup_mode: str
    results: list[ScenarioResult]

    def to_dict(self) -> dict:
        d = asdict(self)
        for r, out in zip(self.results, d["results"]):
            out["speedup"] = round(r.speedup, 3)
            out["acceptance"] = round(r.lookup.acceptance, 3)
            out["copy_bound"] = round(r.copy_bound, 3)
        return d

    def markdown(self) -> str:
        """The side-by-side table."""
        lines = [f"model {self.model}, {self.threads} threads, greedy, {self.max_tokens} tokens max; lookup mode "
                 f"{self.lookup_mode!r}",
                 "", "| scenario | tokens | plain tok/s | lookup tok/s | speed-up | drafted | accepted | acceptance "
                 "| TTFT plain / lookup ms | identical | bound if verify were free |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for r in self.results:
            p, q = r.plain, r.lookup
            lines.append(f"| {r.scenario} | {p.completion_tokens} | {p.decode_tok_s:.1f} | {q.decode_tok_s:.1f} | "
                         f"{r.speedup:.2f}x | {q.drafted_tokens} | {q.accepted_tokens} | {q.acceptance:.0%} | "
                         f"{p.ttft_ms:.0f} / {q.ttft_ms:.0f} | {'yes' if r.identical else 'NO'} | "
                         f"{r.copy_bound:.2f}x |")
        return "\n".join(lines)


def _agreements(prompt: Sequence[int], output: Sequence[int], max_draft: int) -> list[int]:
    """For each position of `output`: how many tokens of the drafter's longest proposal there (drafting from any
    match, up to `max_draft`) agree with what follows. The proposal depends only on the tokens before it."""
    drafter = NgramDrafter(prompt, min_ngram=1)
    agree = []
    for i in range(len(output)):
        draft = drafter.draft(max_draft)
        a = 0
        while a < len(draft) and i + a < len(output) and draft[a] == output[i + a]:
            a += 1
        agree.append(a)
        drafter.extend(output[i:i + 1])
    return agree


def copy_bound(prompt: Sequence[int], output: Sequence[int], max_draft: int = MAX_DRAFT) -> float:
    """The speed-up lookup decoding could reach on this greedy output if verifying a batch cost no more than one token.

    Replays `output` through the drafter (any match length, always the longest draft): each step emits the draft's
    agreeing prefix plus the model's own next token, so the output takes `steps` passes instead of len(output).
    Returns len(output) / steps. Where a batch of k tokens costs more than one (a compute-bound CPU), the measured
    speed-up stays below this; where it stays below the target, no hardware can reach it on this text.
    """
    agree = _agreements(prompt, output, max_draft)
    i = steps = 0
    while i < len(output):
        i += agree[i] + 1
        steps += 1
    return len(output) / steps if steps else 1.0


def oracle_speedup(prompt: Sequence[int], output: Sequence[int], cost: Sequence[float],
                   max_draft: int = MAX_DRAFT) -> float:
    """The best speed-up any lookup policy could reach on this greedy output, on a machine whose verify batch of k
    tokens costs `cost[k - 1]` plain steps (`cost[0]` = 1; batches longer than the list cost proportionally more).

    An oracle that knows the output picks every draft length (0..max_draft, a prefix of the drafter's proposal) to
    minimise the total cost: dynamic programming over the output positions. Measured speed-ups stay below it."""
    if not cost or cost[0] <= 0:
        raise InvalidInput("cost must start with the cost of one token")
    agree = _agreements(prompt, output, max_draft)

    def batch_cost(k: int) -> float:
        return (cost[k - 1] if k <= len(cost) else cost[-1] * k / len(cost)) / cost[0]

    n = len(output)
    best = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        best[i] = min(batch_cost(d + 1) + best[min(n, i + min(agree[i], d) + 1)]
                      for d in range(0, min(max_draft, n - i) + 1))
    return n / best[0] if n else 1.0


def _decode(model: ondevice.Model, prompt: str, max_tokens: int, mode: str) -> tuple[list[int], str, object]:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, speculative=mode)
    tokens, pieces, timings = [], [], None
    for event in model.stream_events(prompt, params):
        if event.token is not None:
            tokens.append(event.token)
        pieces.append(event.text)
        if event.timings is not None:
            timings = event.timings
    return tokens, "".join(pieces), timings


def _mode_run(mode: str, runs: list) -> ModeRun:
    rates = [t.decode_tokens_per_s for _, t in runs]
    last = runs[-1][1]
    return ModeRun(mode, last.completion_tokens, statistics.median(rates),
                   statistics.median(t.ttft_ms for _, t in runs), last.drafted_tokens, last.accepted_tokens, rates)


def run_scenarios(model: str | ondevice.Model, scenarios: Sequence[str] = SCENARIOS, threads: int | None = None,
                  max_tokens: int = 128, repetitions: int = 2, lookup_mode: str = "auto",
                  n_ctx: int = 2048) -> ScenarioReport:
    """Each scenario decoded greedily with speculative "off" and `lookup_mode`, side by side in one run.

    model: an alias, a path, or a loaded `ondevice.Model` (used as it is). One untimed warm-up generation first.
    """
    if lookup_mode not in ("auto", "lookup"):
        raise InvalidInput(f"lookup_mode must be 'auto' or 'lookup', got {lookup_mode!r}")
    if repetitions < 1 or max_tokens < 2:
        raise InvalidInput("repetitions must be >= 1 and max_tokens >= 2")
    chosen = [load_scenario(name) for name in scenarios]
    own = not isinstance(model, ondevice.Model)
    m = ondevice.load(model, n_ctx=n_ctx, threads=threads) if own else model
    try:
        for mode in ("off", lookup_mode):  # warm-up: first-call costs (and auto's calibration) out of the timings
            _decode(m, scenario_prompt(m, load_scenario("rag")), 24, mode)
        results = []
        for scenario in chosen:
            prompt = scenario_prompt(m, scenario)
            _decode(m, prompt, 1, "off")  # every timed run then starts from the cached prompt: TTFTs compare
            # Plain and lookup in alternation (A B, B A, ...): a busy machine slows both alike.
            comp = interleave(lambda: _decode(m, prompt, max_tokens, "off"),
                              lambda: _decode(m, prompt, max_tokens, lookup_mode), repetitions, warmup=0,
                              labels=("off", lookup_mode), key=lambda r: r[2].decode_tokens_per_s)
            runs = {"off": [(t, tm) for t, _, tm in comp.a_results],
                    lookup_mode: [(t, tm) for t, _, tm in comp.b_results]}
            outputs = {"off": comp.a_results[0][0], lookup_mode: comp.b_results[0][0]}
            texts = {"off": comp.a_results[0][1], lookup_mode: comp.b_results[0][1]}
            identical = all(tokens == outputs["off"] for mode in runs for tokens, _ in runs[mode])
            bound = copy_bound(m.tokenize(prompt), outputs["off"])
            results.append(ScenarioResult(scenario.name, _mode_run("off", runs["off"]),
                                          _mode_run(lookup_mode, runs[lookup_mode]), identical, texts["off"], bound,
                                          round_speedups=[round(y / x, 4) for x, y in zip(comp.a, comp.b)]))
        return ScenarioReport(m.name, m.threads, max_tokens, lookup_mode, results)
    finally:
        if own:
            m.close()


# --- 8B projection -------------------------------------------------------------------------------------------------

@dataclass
class VerifyCost:
    """Seconds to evaluate k tokens in one batch, relative to one token, on one model."""

    model: str
    k: list[int]
    seconds: list[float]
    relative: list[float]     # seconds[k] / seconds[1]
    slope: float              # least-squares beta in relative(k) = 1 + beta (k - 1)
    plain_tok_s: float        # 1 / seconds[1]


def verify_costs(model: ondevice.Model, max_k: int = 16, repetitions: int = 3) -> VerifyCost:
    """Time `Model.logits` on k tokens (one batch from an empty context, logits at every position: what a verify
    step computes) for k = 1..max_k; median of `repetitions`."""
    vocab_probe = model.tokenize("The quick brown fox jumps over the lazy dog, again and again and again.",
                                 add_special=False)
    tokens = (vocab_probe * (max_k // max(len(vocab_probe), 1) + 1))[:max_k]
    model.logits(tokens[:2])  # warm-up
    ks, secs = list(range(1, max_k + 1)), []
    for k in ks:
        samples = []
        for _ in range(repetitions):
            t0 = time.perf_counter()
            model.logits(tokens[:k])
            samples.append(time.perf_counter() - t0)
        secs.append(statistics.median(samples))
    rel = [s / secs[0] for s in secs]
    xs = [k - 1 for k in ks]
    slope = sum(x * (r - 1) for x, r in zip(xs, rel)) / sum(x * x for x in xs) if max_k > 1 else 0.0
    return VerifyCost(model.name, ks, secs, rel, slope, 1.0 / secs[0])


def project(result: ScenarioResult, cost: VerifyCost) -> dict:
    """Predicted tok/s of lookup decoding on the costed model, from a scenario's measured drafted/accepted counts.

    A generation of N tokens of which A were accepted drafts takes N - A decode steps; the D drafted tokens add
    beta * D single-token costs (the linear verify-cost model). A PREDICTION: acceptance measured on a small model,
    costs on the shape probe."""
    n, a, d = result.lookup.completion_tokens, result.lookup.accepted_tokens, result.lookup.drafted_tokens
    units = (n - a) + cost.slope * d
    speedup = n / units if units > 0 else 1.0
    return {"scenario": result.scenario, "predicted_speedup": round(speedup, 3),
            "predicted_tok_s": round(cost.plain_tok_s * speedup, 2), "plain_tok_s": round(cost.plain_tok_s, 2),
            "label": "prediction"}


def bench_scenarios(models: Sequence[str], names: Sequence[str], threads: int | None, max_tokens: int,
                    repetitions: int, probe: str | None = None, quant: str | None = None) -> dict:
    """`ondevice bench MODEL --scenario ...`: the scenario reports of each model, and with a probe its verify
    costs and the predicted tok/s per scenario. Returns JSON-ready data with a "markdown" rendering."""
    if not models:
        raise InvalidInput("--scenario needs at least one MODEL")
    names = list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))
    reports = [run_scenarios(m, names, threads, max_tokens, repetitions) for m in models]
    out = {"scenarios": [r.to_dict() for r in reports]}
    text = [r.markdown() for r in reports]
    if probe:
        from bench.probe import ensure_probe

        path = ensure_probe(probe, quant or "Q4_K_M")
        with ondevice.load(str(path), n_ctx=512, threads=threads) as m:
            cost = verify_costs(m)
        rows = [project(res, cost) for res in reports[0].results]
        out["verify_cost"], out["projection"] = asdict(cost), rows
        text.append(f"verify cost on the {probe} probe: k tokens in one batch = 1 + {cost.slope:.3f} (k-1) single "
                    f"tokens; plain {cost.plain_tok_s:.2f} tok/s\n\nPREDICTION for lookup decoding on {probe} "
                    f"(acceptance of {reports[0].model}):\n\n| scenario | predicted speed-up | predicted tok/s |"
                    f"\n|---|---:|---:|")
        text[-1] += "".join(f"\n| {r['scenario']} | {r['predicted_speedup']:.2f}x | {r['predicted_tok_s']:.2f} |"
                            for r in rows)
    out["markdown"] = "\n\n".join(text)
    return out
