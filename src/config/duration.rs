//! Implementer: "500ms" / "60s" / "5m" / "1h" parser.
