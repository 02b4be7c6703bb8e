"""Training of the learned models (``listenerctl train MODEL``): the shared loop (`loop`), the listener
corpus as training windows (`listener_windows`), and one module per model (`lbd`, `difflistener`,
`sfms`, `facetok`, `diffsheg`) with its `make_train_plan`, data loading and held-out evaluation. The
model registry names each model's plan builder (`models.train_plan_builder`)."""
