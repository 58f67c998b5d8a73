"""The Shapes-world demo model family (shared/shapes_world.md): the world and its captions
(`world`, `captions`), the scoring rule (`scoring`), the codec and text encoder (`codec`, `text`,
`pca`), the bundle format (`bundle`), the pipeline (`pipeline`), training data (`data`),
training (`train`) and evaluation (`eval`). Commands: `python -m engine.demo.train`,
`python -m engine.demo.eval shapes`."""
