"""Compression methods, one folder each. Every folder here registers its `Method` subclass when
imported; `leanformer.registry` lists the folders and imports them on first use, so this package
imports nothing itself and a new method needs no edit outside its folder."""
