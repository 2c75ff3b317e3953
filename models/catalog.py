"""Every registered model, as a lazy ``module:Class`` entry (importing one model never imports
the others). Add a method: write ``models/<name>.py`` with a :class:`models.base.Model` subclass
and add one line here.

``PLUGINS`` holds method parts that compose with a backbone (:class:`models.base.ModelPlugin`):
the registry resolves ``<backbone>+<plugin>`` (e.g. ``tiger+soda``) to a class built from both,
for every backbone the plug-in accepts, with no class written per pair."""

MODELS: dict[str, str] = {
    "pop": "models.pop:Popularity",
    "sasrec": "models.recbole_baselines:SASRec",
    "gru4rec": "models.recbole_baselines:GRU4Rec",
    "narm": "models.recbole_baselines:NARM",
    "tiger": "models.tiger:TIGER",
    "letter": "models.letter:LETTER",
    "diger": "models.diger:DIGER",
    "unigrec": "models.unigrec:UniGRec",
}

PLUGINS: dict[str, str] = {
    "soda": "models.soda:SODA",
}
