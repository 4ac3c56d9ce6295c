# METADATA
# title: The compiled form's switch
# description: |
#   `airflow-opa-mutation compile` and `bundle build` specialize the library
#   for one configuration: they generate a second module of this package
#   (lib/compiled.generated.rego in a bundle) holding the merged settings,
#   the enabled policies and static references to their patch, deny and warn
#   rules (read when every enabled policy is active: no exemption applies),
#   and `holds` for exactly the configuration it was compiled from.
#   lib/config.rego and lib/framework.rego take those values while `holds`;
#   under any other configuration (a changed data document, a test's `with`)
#   they compute them as ever, so the generated module can never give a
#   decision of its own. policies/README.md, "The compiled form".
# scope: package
package airflow.pod.lib.compiled

# METADATA
# title: The compiled values apply
# description: |
#   True only with a generated module whose configuration is the one in
#   force; without one (the dynamic form) always false.
default holds := false

# What the generated module defines (these defaults are never read: only
# `holds` makes the library read them).

# METADATA
# title: Merged settings
# description: lib/config.rego's settings for the compiled configuration.
default settings := {}

# METADATA
# title: Enabled policies
# description: The names of the policies whose merged `enabled` is true.
default enabled := set()

# METADATA
# title: Every enabled policy is active
# description: |
#   No exemption applies to the pod: the lists below hold exactly the active
#   policies. Otherwise the framework reaches the active ones by name.
default all_active := false

# METADATA
# title: Proposed operations
# description: lib/framework.rego's proposed, by static references.
default proposed := []

# METADATA
# title: Deny messages
# description: Deny messages by active policy, judged on the patched pod.
default denies := {}

# METADATA
# title: Warn messages
# description: Warn messages by active policy, judged on the patched pod.
default warns := {}
