"""The model runtime: a registered version's files loaded as a model (``modelio``), the pooled forward
pass (``inference``), scores computed from logits (``scores``: the one softmax, separability) and the
ONNX path (``onnxrt``: export, int8 quantization and its accuracy check, sessions). Serving, the monitor
and training all run models through it; it knows the registry's records but never writes them."""
