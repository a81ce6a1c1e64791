"""Docker network plugins (the libnetwork remote driver protocol) as pyengine network drivers."""
