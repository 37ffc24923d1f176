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


def test_a_train_config_has_its_declared_defaults_and_its_own_copies():
    first, second = TrainConfig(), TrainConfig(epochs=3)
    assert (first.model, first.epochs, second.epochs, first.model_options) == ("cnn", 20, 3, {})
    first.model_options["alpha"] = 1
    assert TrainConfig().model_options == {}  # a default is copied, never shared
    assert second.replace(epochs=4) == TrainConfig(epochs=4) != second
    assert TrainConfig.from_options(second.to_dict()) == second


def test_the_train_command_takes_every_declared_option():
    from edgekit.cli.train import train_command

    flags = {flag for param in train_command.params for flag in param.opts}
    declared = [option for option in TrainConfig.options() if option.cli]
    assert declared and all(option.flag in flags for option in declared)
    assert {"--lr", "-m", "-d", "--model-option", "--preprocess"} <= flags


def test_a_dataclass_config_gets_the_shared_checks_from_its_declarations():
    from dataclasses import dataclass

    from edgekit.config import FlatConfig
    from edgekit.options import Option

    @dataclass
    class ServeLike(FlatConfig):
        port: int = 8000
        protocol: str = "http"

        kind = "serving"
        OPTIONS = (Option("port", int, 8000, "the HTTP port", minimum=1, maximum=65535),
                   Option("protocol", str, "http", "the protocol", choices=("http", "grpc")))

    assert ServeLike.from_options({"port": 9000}).to_dict() == {"port": 9000, "protocol": "http"}
    with pytest.raises(OptionError, match=r"--port takes the HTTP port, an integer in "
                                          r"\[1, 65535\]; received 0"):
        ServeLike.from_options({"port": 0})
    with pytest.raises(OptionError, match=r"unknown --protocol 'udp'; expected one of: http, grpc"):
        ServeLike.from_options({"protocol": "udp"})
    with pytest.raises(OptionError, match=r"unknown serving option\(s\) host; expected some of: "
                                          r"port, protocol"):
        ServeLike.from_options({"host": "0.0.0.0"})
