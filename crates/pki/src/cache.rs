//! A repeat-verification cache: validated intermediates keyed by certificate hash and time window.
