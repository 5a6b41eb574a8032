"""Plan: the latency-saliency knapsack that chooses how many channels each group keeps."""
