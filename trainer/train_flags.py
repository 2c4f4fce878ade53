"""The training flags, one absl flag per TrainConfig field, shared by trainer.main and experiments.protocol."""
import dataclasses

from absl import flags

from trainer import decoding, recipe, train
from trainer.models import MODELS

FLAGS = flags.FLAGS


def define():
    """Defines the flags; call once, at import of an entry point."""
    defaults = train.TrainConfig(model="", data_dir="", model_dir="")
    flags.DEFINE_enum("model", None, [*MODELS, recipe.AUTO], "Architecture from trainer.models.MODELS, or auto: "
                      "the model and the settings you leave at their defaults chosen from the dataset and "
                      "--time_budget (trainer.recipe; it logs what it picked).")
    flags.DEFINE_string("data_dir", None, "Dataset folder holding spec.json and the TFRecord shards.")
    flags.DEFINE_string("model_dir", None, "Output folder: checkpoints, logs, exported SavedModel.")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Global batch size (split across replicas).")
    flags.DEFINE_integer("epochs", defaults.epochs, "Maximum number of epochs.")
    flags.DEFINE_integer("steps_per_epoch", None, "Train steps per epoch; default one pass over the train split.")
    flags.DEFINE_float("learning_rate", None, f"Initial Adam learning rate; default {train.LEARNING_RATE}, "
                       f"or {train.FINE_TUNE_LEARNING_RATE} with --init_from.")
    flags.DEFINE_enum("lr_schedule", defaults.lr_schedule, list(train.LR_SCHEDULES),
                      "plateau: divide by 10 when val_loss stalls (--lr_patience); cosine: decay to 0 over "
                      "--time_budget if given, else over all epochs.")
    flags.DEFINE_float("warmup", defaults.warmup, "With --lr_schedule=cosine: fraction of training (of the "
                       "time budget if given) spent ramping the learning rate up from 0 to its peak.")
    flags.DEFINE_float("clipnorm", defaults.clipnorm, "Clip each step's gradients to this global norm (default: no clipping).")
    flags.DEFINE_float("time_budget", None, "Seconds of training; then stop and keep the best checkpoint.")
    flags.DEFINE_integer("patience", defaults.patience, "Early stopping: epochs without a better val_captcha_acc.")
    flags.DEFINE_integer("lr_patience", defaults.lr_patience, "Epochs without a lower val_loss before LR / 10.")
    flags.DEFINE_enum("decoder", defaults.decoder, list(decoding.DECODERS), "CTC decoding for validation and export.")
    flags.DEFINE_enum("precision", defaults.precision, list(train.PRECISIONS), "Compute dtype policy: "
                      "mixed_float16 for GPU tensor cores, mixed_bfloat16 for AMX/AVX512-BF16 CPUs "
                      "(variables, softmax and loss stay float32).")
    flags.DEFINE_bool("jit_compile", defaults.jit_compile, "Compile the train step with XLA (KERAS_BACKEND="
                      "tensorflow; jax always does; refused on torch).")
    flags.DEFINE_enum("strategy", defaults.strategy, list(train.STRATEGIES), "mirrored: all local GPUs "
                      "(KERAS_BACKEND=tensorflow only).")
    flags.DEFINE_bool("verify_shards", defaults.verify_shards, "Check shard sha256 values against the spec first.")
    flags.DEFINE_bool("cache", defaults.cache, "Keep decoded uint8 images in memory (small datasets).")
    flags.DEFINE_integer("seed", None, "Random seed for weights and shuffling.")
    flags.DEFINE_string("init_from", None, "Fine-tune: start from this model_dir's best.keras. Its --model, charset "
                        "and image shape must match (cnn: its label lengths too); a different --model is refused.")
    flags.DEFINE_integer("input_height", None, "Resize images to this height (width in proportion) inside the model; "
                         "default: the dataset's own. A CTC model trained at one input height fine-tunes on images "
                         "of any size.")
    flags.DEFINE_bool("crop", defaults.crop, "Cut each image's text box out (the rows and columns holding its ink, "
                      "with a margin) and scale it to the input size inside the model, in place of the plain resize: "
                      "for small characters in wide frames; the same at inference. Off unless given (--model=auto "
                      "then takes the least input height); a fine-tuned run inherits the init run's.")
    flags.DEFINE_bool("ink", defaults.ink, "The architecture reads one channel of ink (each pixel's distance from "
                      "the image's background colour, scaled by the image's strongest ink) in place of the colours: "
                      "for characters of many colours and faintness. Default: --model=auto decides (on for labels "
                      "of several lengths), off for a named model; a fine-tuned run inherits the init run's.")
    flags.DEFINE_bool("jitter", defaults.jitter, "Randomly rotate, shear, shrink and shift each training image "
                      "inside the model, after --input_height's resize (cheap: the small image is jittered); "
                      "never at inference. Default: --model=auto decides (on for labels of several lengths), off "
                      "for a named model.")
    flags.DEFINE_integer("train_examples", None, "Train on the first N records of the train split only (the same "
                         "ones every run): how a reader does with fewer labels. Default: all of them.")
    flags.DEFINE_bool("augment", defaults.augment, "Randomly jitter training images (geometry, brightness, "
                      "contrast, noise): for small real datasets.")
    flags.DEFINE_bool("colour_augment", defaults.colour_augment, "Randomly recolour training images (channel order, "
                      "gain, desaturation, ink gamma, fade to white; RGB only): for coloured real captchas.")
    flags.DEFINE_bool("overwrite", defaults.overwrite, "Train again from scratch in a --model_dir that holds a "
                      "finished run: first deletes its run files (best.keras, logs, saved_model/, ...), nothing else.")
    flags.mark_flags_as_required(["model", "data_dir", "model_dir"])


def train_config():
    """The TrainConfig the parsed flags describe."""
    return train.TrainConfig(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(train.TrainConfig)})
