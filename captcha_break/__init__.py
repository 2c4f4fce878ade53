"""Reading captchas with a trained reader, without TensorFlow, Keras or Beam: onnxruntime, numpy and Pillow only.

    from captcha_break.reader import Reader
    reader = Reader("runs/ctc")                  # runs/ctc/reader.onnx + reader.json (trainer.export --format=onnx)
    text, confidence = reader.read("captcha.png")
    answers = reader.read_batch([open("a.png", "rb").read(), "b.jpg"])

    python -m captcha_break.serve --model_dir=runs/ctc --port=8080                        # the HTTP service
    python -m captcha_break.label --model_dir=runs/ctc --input=new/ --output=labels.csv   # pre-labelling
    python -m captcha_break.benchmark --model_dir=runs/ctc --images=new/                  # the serving benchmark

This package imports nothing from trainer/, experiments/ or pipeline/ (only the standard library, numpy, Pillow,
onnxruntime, and for the service Starlette and uvicorn; its commands parse with argparse, not absl): it can be
copied alone to a host that serves. The trainer imports it (the reader's one-line errors), never the reverse.
"""
