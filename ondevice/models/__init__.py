"""Facts about model files and where they live: the store and its name schemes (`store`, `hub`, `catalog`), GGUF
headers (`gguf_file`), ONNX folders (`onnx_folder`), `ModelInfo` (`model_info`), memory estimates (`memory`) and
chat templates (`chat_template`).

Floor 1 of the runtime (docs/ARCHITECTURE.md, section 2b): imports only the foundations (`errors`, `files`,
`plugins`).
"""
