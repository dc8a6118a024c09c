"""Music formats: reading pieces into notes, writing ABC and MIDI, checking tunes, recordings and audio."""
