"""The default configuration files, shipped in the wheel as the package data ``qerberos.config``.

``qerberos.package_data.config_file`` finds them; ``QERBEROS_CONFIG_DIR`` overrides any of them.
"""
