//! Path building: candidate paths from leaf to a trust anchor over a pool of intermediates.
