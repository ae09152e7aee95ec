"""The Setup screen's widget ids for config keys: one rule, shared by the screen's frame, its
fields module and the tests, without importing either."""


def field_id(key: str) -> str:
    """`train.batch_size` -> `f-train-batch-size`."""
    return "f-" + key.replace(".", "-").replace("_", "-")
