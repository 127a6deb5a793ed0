"""Choosing where a request runs: the `Router` over local and remote models (`router`) and the privacy check that
keeps sensitive prompts on the device (`privacy`).

Floor 5 of the runtime (docs/ARCHITECTURE.md, section 2b), beside `ondevice.model` and `ondevice.session`.
"""
