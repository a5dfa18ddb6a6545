"""The built-in space files. Each defines `space`: `from spaces.tiny import space`."""
