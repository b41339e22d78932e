"""Training the embedded model on the synthetic world: tokenizer, VQ-VAE, joint-vocabulary LM.

`chatgen train --out DIR` runs every stage (`pipeline.train_all`); each stage can run alone.
"""
