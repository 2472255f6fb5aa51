"""What runs inside relay's RQ workers: fan-out, delivery, the sinks."""
