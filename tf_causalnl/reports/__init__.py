"""Reports of a trained model and its data: which labels are wrong (`label_issues`), and pictures.

`probes` computes what the pictures show, `pictures` draws one PNG a call,
`run_pictures` draws all of a run's. Above `models`, below `training`.
"""
