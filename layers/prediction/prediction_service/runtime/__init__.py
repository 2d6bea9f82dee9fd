"""What a served model is: one `Runtime` interface (inputs, outputs, `run`) over an ONNX graph, a
tokenizer in front of a graph, or an ensemble; `registry` turns a manifest entry into its runtime."""
