"""Reading captchas with a trained reader, without TensorFlow, Keras or Beam: onnxruntime, numpy and Pillow only.

    from captcha_break.reader import Reader
    reader = Reader("runs/ctc")                  # runs/ctc/reader.onnx + reader.json (trainer.export --format=onnx)
    text, confidence = reader.read("captcha.png")
    answers = reader.read_batch([open("a.png", "rb").read(), "b.jpg"])

    python -m trainer.serve --model_dir=runs/ctc --port=8080          # the HTTP service (captcha_break.serve)
    python -m trainer.label --model_dir=runs/ctc --input=new/ --output=labels.csv   # pre-labelling (.label)

This package imports nothing from trainer/ or pipeline/ (only the standard library, numpy, Pillow, onnxruntime, and
for the service Starlette and uvicorn): it can be copied alone to a host that serves.
"""
