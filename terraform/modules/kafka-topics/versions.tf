terraform {
  required_providers {
    kafka = {
      source = "Mongey/kafka"
    }
  }
}
