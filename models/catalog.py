"""Every registered model, as a lazy ``module:Class`` entry (importing one model never imports
the others). Add a method: write ``models/<name>.py`` with a :class:`models.base.Model` subclass
and add one line here."""

MODELS: dict[str, str] = {
    "pop": "models.pop:Popularity",
    "sasrec": "models.recbole_baselines:SASRec",
    "gru4rec": "models.recbole_baselines:GRU4Rec",
    "narm": "models.recbole_baselines:NARM",
    "tiger": "models.tiger:TIGER",
    "letter": "models.letter:LETTER",
    "diger": "models.diger:DIGER",
}
