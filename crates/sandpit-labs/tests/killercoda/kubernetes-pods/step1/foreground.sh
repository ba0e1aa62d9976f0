watch kubectl get pods
