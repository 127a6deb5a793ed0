"""Facts about this machine: CPU and ISA (`cpu`), execution providers (`providers`), huge pages (`hugepages`), memory
bandwidth (`bandwidth`), the defaults they imply for a model (`autoconfig`) and the hardware report (`doctor`).

Floor 2 of the runtime (docs/ARCHITECTURE.md, section 2b): imports only the foundations and `ondevice.models`.
"""
