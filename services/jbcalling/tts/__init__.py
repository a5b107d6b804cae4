"""tts: text -> speech per language with Piper voices, streamed sentence by sentence."""
