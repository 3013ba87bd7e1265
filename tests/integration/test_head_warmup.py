"""The head-only warm-up (retrain.phases): the encoder is frozen for the first N epochs, then every
parameter that was trainable trains again; layers frozen by ``freeze_layers`` stay frozen."""

from __future__ import annotations

from types import SimpleNamespace

from retrain.phases import encoder_parameters, head_warmup
from retrain.train import default_base_model_path, freeze_lower_layers


def test_the_encoder_rests_for_the_warmup_epochs_then_trains() -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        default_base_model_path(), num_labels=3, num_hidden_layers=2, local_files_only=True
    )
    freeze_lower_layers(model, 1)  # the embeddings and layer 0 stay frozen throughout
    frozen_before = {id(p) for p in model.parameters() if not p.requires_grad}
    callback = head_warmup(model, 1)
    callback.on_train_begin(None, SimpleNamespace(epoch=0.0), None)
    encoder = {id(p) for p in encoder_parameters(model)}
    assert encoder and all(not p.requires_grad for p in encoder_parameters(model))
    head = [p for p in model.parameters() if id(p) not in encoder]
    assert head and all(p.requires_grad for p in head)  # the classifier learns alone

    callback.on_epoch_end(None, SimpleNamespace(epoch=1.0), None)
    assert {id(p) for p in model.parameters() if not p.requires_grad} == frozen_before
    head_warmup(model, 0).on_train_begin(None, SimpleNamespace(epoch=0.0), None)  # 0 epochs: no warm-up
    assert {id(p) for p in model.parameters() if not p.requires_grad} == frozen_before
