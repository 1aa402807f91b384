"""Built-in entropy coders (lossless coding of the quantizer's int32 symbols).

Stages, each registered in the ``latentcodec.entropy_coders`` entry-point group:

* ``ans`` (:mod:`.ans`): static per-channel histograms sent in the stream + rANS;
* ``zlib`` (:mod:`.zlib_coder`): the baseline to beat;
* ``ans-binned`` (:mod:`.binned`): log bins + uniform offsets, for heavy-tailed palette ranks;
* ``ans-factorized`` (:mod:`.factorized`): a learned per-channel prior shipped as integer tables;
* ``ans-hyperprior`` (:mod:`.hyperprior`): a learned hyperprior with channel and spatial
  context, decoded in exact integer arithmetic;
* ``ans-context`` (:mod:`.pyramid`): an untrained checkerboard-pyramid context model.

Shared machinery: :mod:`.rans` (constriction models, ANS words, the reverse-order
encoder), :mod:`.tables` (integer tables: zigzag, frequency normalisation, table bytes),
:mod:`.priors` (shipped prior files, table sets, the part coder of the learned models).
"""
