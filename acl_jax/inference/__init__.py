"""Using a trained encoder outside the trainer: the model directory (`model.py`), its weights as
plain arrays (`arrays.py`), the classification head (`classifier.py`), the model card
(`card.py`) and raw-record inputs read exactly as `acl_jax.prepare` reads them (`inputs.py`).

Entry points: `acl_jax.load(path)`, `python -m acl_jax.export | acl_jax.embed | acl_jax.predict`.
"""
