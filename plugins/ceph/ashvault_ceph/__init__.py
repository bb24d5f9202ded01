"""ashvault's Ceph plugin: the ``ceph`` backup driver (RBD to RBD through snapshot diffs, anything else into RADOS
through the core's chunked engine) and the ``rbd`` volume source (``rbd:pool/image[@snapshot]``)."""
