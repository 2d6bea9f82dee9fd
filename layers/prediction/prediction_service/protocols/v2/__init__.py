"""The Open Inference Protocol (v2), as KServe, Triton and MLServer speak it, with Triton's binary
tensor extension."""
