# The Open Policy Agent peer of bench/peers.py: a user is denied a model when the deny set holds them.
# data.denied is {"<model>": {"<user id>": true, ...}, ...}, loaded by the data API or a bundle.
package peers

import rego.v1

default deny := false

deny if data.denied[input.model][input.user]
