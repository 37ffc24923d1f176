import pytest

from edgekit.config import TrainConfig
from edgekit.errors import OptionError


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 0}, "epochs must be an integer >= 1; received 0"),
        ({"batch_size": -4}, "batch_size must be an integer >= 1"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"optimizer": "lion"}, "unknown optimizer 'lion'; expected one of: adam, sgd, rmsprop"),
        ({"schedule": "step"}, "unknown schedule 'step'"),
        ({"validation_fraction": 0.9}, r"validation_fraction must be in \(0, 0.5\]"),
        ({"momentum": 0.5, "optimizer": "adam"}, "--momentum applies to --optimizer sgd only"),
        ({"model": "my.keras", "model_options": {"alpha": 1}}, "--model-option configures zoo models"),
        ({"colour": "red"}, "unknown training option"),
    ],
)
def test_bad_training_options_say_what_was_received(options, message):
    with pytest.raises(OptionError, match=message):
        TrainConfig.from_options(options)


def test_cli_args_reproduce_the_config():
    config = TrainConfig.from_options({"model": "mlp", "epochs": 3, "augment": True,
                                       "model_options": {"hidden_units": 64}})
    args = config.to_cli_args()
    assert args[:4] == ["--model", "mlp", "--dataset", "digits"]
    assert "--augment" in args and "--tensorboard" not in args
    assert args[args.index("--epochs") + 1] == "3"
    assert args[args.index("--model-option") + 1] == "hidden_units=64"
