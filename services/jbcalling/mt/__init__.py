"""mt: Vietnamese <-> English translation (CTranslate2 + SentencePiece), micro-batched, cached."""
