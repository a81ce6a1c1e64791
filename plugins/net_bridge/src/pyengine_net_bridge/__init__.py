"""pyengine's bridge network driver: Linux bridges, veth pairs, nftables NAT and port publishing."""
