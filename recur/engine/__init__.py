"""The engines that run a `Program`, their registry, and the array backends they use."""
