//! The web-PKI server profile: serverAuth EKU and peer-name matching with wildcards.
