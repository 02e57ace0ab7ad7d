"""Where a customer is (P12): the device's position and the location kept in customer.yaml."""
