"""The `tf.train.Example` schema of a captcha record, and its deterministic serialization without TensorFlow.

The Example messages are built with `google.protobuf` from tensorflow/core/example/{example,feature}.proto
(the fields below are theirs), in a descriptor pool of our own, so workers render and write shards
without importing TensorFlow and a process that imports both never sees two `tensorflow.Example`s.

    python -c "from pipeline import records; print(records.Example)"
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from pipeline.render import Record

# Written into spec.json as "features": the trainer builds its parser from the spec, not from this module.
FEATURES = {
    "image": {"dtype": "string", "shape": [], "description": "encoded image bytes (see image.encoding)"},
    "text": {"dtype": "string", "shape": [], "description": "label text, UTF-8"},
    "label": {"dtype": "int64", "shape": [None], "description": "index of each label character in charset"},
    "length": {"dtype": "int64", "shape": [], "description": "number of characters in the label"},
    "index": {"dtype": "int64", "shape": [], "description": "record index within its split"},
}

_F = descriptor_pb2.FieldDescriptorProto


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    """example.proto and feature.proto (proto3, package tensorflow) as one file descriptor."""
    proto = descriptor_pb2.FileDescriptorProto(name="captcha_break/example.proto", package="tensorflow",
                                               syntax="proto3")

    def message(name, *fields, options=None):
        m = proto.message_type.add(name=name, options=options)
        for field_name, number, kind, label, type_name in fields:
            m.field.add(name=field_name, number=number, type=kind, label=label, type_name=type_name)
        return m

    message("BytesList", ("value", 1, _F.TYPE_BYTES, _F.LABEL_REPEATED, None))
    message("FloatList", ("value", 1, _F.TYPE_FLOAT, _F.LABEL_REPEATED, None))
    message("Int64List", ("value", 1, _F.TYPE_INT64, _F.LABEL_REPEATED, None))
    feature = message("Feature", ("bytes_list", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.BytesList"),
                      ("float_list", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.FloatList"),
                      ("int64_list", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Int64List"))
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message("Features", ("feature", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED,
                                    ".tensorflow.Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry", options=descriptor_pb2.MessageOptions(map_entry=True))
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                    type_name=".tensorflow.Feature")
    message("Example", ("features", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Features"))
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_example_file())
Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("tensorflow.Example"))


def serialize(record: Record) -> bytes:
    """Example bytes; `deterministic=True` orders the feature map, so bytes don't depend on the process."""
    example = Example()
    feature = example.features.feature
    feature["image"].bytes_list.value.append(record.png)
    feature["text"].bytes_list.value.append(record.text.encode("utf-8"))
    feature["label"].int64_list.value.extend(record.label)
    feature["length"].int64_list.value.append(len(record.label))
    feature["index"].int64_list.value.append(record.index)
    return example.SerializeToString(deterministic=True)
