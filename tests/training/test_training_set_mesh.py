"""`with mesh:` -> `with jax.set_mesh(mesh):` (training/sharding.py): only where the file
binds the name to a mesh constructor; the converted context sets the mesh that sharding
constraints read, which the deprecated one no longer does (jax 0.10)."""

from __future__ import annotations

import textwrap

from nnx_migrate.rewrite import rewrite_source

PROGRAM = textwrap.dedent('''\
    import jax
    import numpy as np
    from flax import linen as nn
    from flax.training import train_state
    from jax.sharding import Mesh

    GLOBAL: jax.sharding.Mesh = jax.make_mesh((1,), ('data',))


    def create(key, model, tx, devices, given_mesh, lock):
      mesh = Mesh(np.array(devices).reshape(1, 1), ('data', 'model'))
      with mesh, nn.logical_axis_rules((('batch', 'data'),)):
        params = model.init(key, np.ones((1, 2)))['params']
      with GLOBAL:
        pass
      with Mesh(np.array(devices), ('data',)):
        pass
      with given_mesh, lock:
        pass
      with mesh as m:
        pass
      return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    ''')


def test_meshes_the_file_builds_become_set_mesh_others_stay():
    text = rewrite_source(PROGRAM, "prog.py").new_text
    assert "with jax.set_mesh(mesh), nnx.logical_axis_rules((('batch', 'data'),)):" in text
    assert "with jax.set_mesh(GLOBAL):" in text
    assert "with jax.set_mesh(Mesh(np.array(devices), ('data',))):" in text
    assert "with given_mesh, lock:" in text  # a parameter: not known to be a mesh
    assert "with mesh as m:" in text  # `as` binds what the old context returned
    assert rewrite_source(text, "prog.py").new_text == text


def test_set_mesh_sets_the_mesh_constraints_read_and_with_mesh_does_not():
    """Why the rule exists (jax 0.10.2)."""
    import warnings

    import jax
    import numpy as np
    from flax.core import meta

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with mesh:
            old = (meta.global_mesh_defined(), jax.sharding.get_abstract_mesh().empty)
    with jax.set_mesh(mesh):
        new = (meta.global_mesh_defined(), jax.sharding.get_abstract_mesh().empty)
    assert old == (False, True) and new == (True, False)
