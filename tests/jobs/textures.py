"""Background job of tests/test_viewer.py: Craftax-Classic's textures, processed once per install (about
30 s on a fresh one) and cached by Craftax in its package, so that the viewer tests load them instead of
processing them on the suite's critical path. Prints one JSON line."""

import json

from craftax.craftax_classic import constants

textures = constants.load_all_textures()
print(json.dumps({"sizes": sorted(int(k) for k in textures)}))
