"""The mini ESCO release under ``tests/data/esco_mini/``: its data, the script that writes it, and a
helper that zips it the way ESCO ships it.

The CSV files are committed; this script is their source. After changing the tables below, run
``python tests/data/make_fixtures.py`` and commit the result (a unit test checks they agree).

Tests that need zips call :func:`zip_release` (see tests/data/README.md). The module is loaded by path,
e.g.::

    import importlib.util, pathlib
    spec = importlib.util.spec_from_file_location("make_fixtures", pathlib.Path("tests/data/make_fixtures.py"))
    fx = importlib.util.module_from_spec(spec); spec.loader.exec_module(fx)
    fx.SKILL["bread"]  # -> "http://data.europa.eu/esco/skill/..."
"""

from __future__ import annotations

import csv
import io
import sys
import uuid
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE / "esco_mini"
V11_VERSION = "v1.1.9"  # fictional versions: never confused with a real release
V12_VERSION = "v1.2.9"
V11_DIR = ROOT / V11_VERSION
V12_DIR = ROOT / V12_VERSION
V11_FOLDERS = (
    f"esco_{V11_VERSION}_classification_en_csv",
    f"esco_{V11_VERSION}_classification_de_csv",
    f"esco_{V11_VERSION}_relations_csv",
)
V12_ZIP_NAME = f"ESCO dataset - {V12_VERSION} - classification - csv"
LANGUAGES = ("en", "de")

ESCO = "http://data.europa.eu/esco"


def _uuid(key: str) -> str:
    """A stable, real-looking (version 4) UUID for a fixture concept."""
    return str(uuid.UUID(bytes=uuid.uuid5(uuid.NAMESPACE_URL, f"esco-mini/{key}").bytes, version=4))


# ------------------------------------------------------------------------------------------ skill groups
# key: (code, parent key or None, en label, de label)
GROUPS: dict[str, tuple[str, str | None, str, str]] = {
    "S": ("S", None, "skills", "Fähigkeiten"),
    "K": ("K", None, "knowledge", "Wissen"),
    "T": ("T", None, "transversal skills and competences", "Übergreifende Fähigkeiten und Kompetenzen"),
    "L": ("L", None, "language skills and knowledge", "Sprachfähigkeiten und -kenntnisse"),
    "S2": ("S2", "S", "information skills", "Informationskompetenzen"),
    "S3": ("S3", "S", "assisting and caring", "Unterstützung und Pflege"),
    "S5": ("S5", "S", "working with computers", "Arbeiten mit Computern"),
    "S6": ("S6", "S", "handling and moving", "Handhabung und Transport"),
    "S8": ("S8", "S", "working with machinery and specialised equipment",
           "Arbeiten mit Maschinen und Spezialausrüstung"),
    "K04": ("04", "K", "business, administration and law", "Wirtschaft, Verwaltung und Recht"),
    "K06": ("06", "K", "information and communication technologies (icts)",
            "Informations- und Kommunikationstechnologien (IKT)"),
    "K07": ("07", "K", "engineering, manufacturing and construction",
            "Ingenieurwesen, verarbeitendes Gewerbe und Baugewerbe"),
    "T2": ("T2", "T", "thinking skills and competences", "Denkfähigkeiten und -kompetenzen"),
    "L1": ("L1", "L", "languages", "Sprachen"),
    "S2.5": ("S2.5", "S2", "documenting and recording information",
             "Dokumentieren und Aufzeichnen von Informationen"),
    "S3.2": ("S3.2", "S3", "providing health care or medical treatments",
             "Erbringung von Gesundheitsversorgung oder medizinischen Behandlungen"),
    "S5.1": ("S5.1", "S5", "programming computer systems", "Programmieren von Computersystemen"),
    "S6.3": ("S6.3", "S6", "preparing food and drinks", "Zubereitung von Speisen und Getränken"),
    "S8.2": ("S8.2", "S8", "operating machinery for the manufacture of products",
             "Bedienen von Maschinen zur Herstellung von Produkten"),
    "S8.5": ("S8.5", "S8", "repairing, installing and maintaining mechanical equipment",
             "Reparatur, Installation und Wartung mechanischer Ausrüstung"),
    "K0411": ("0411", "K04", "accounting and taxation", "Rechnungswesen und Steuern"),
    "K0613": ("0613", "K06", "software and applications development and analysis",
              "Entwicklung und Analyse von Software und Anwendungen"),
    "K0715": ("0715", "K07", "mechanics and metal trades", "Maschinenbau und Metallverarbeitung"),
    "T2.1": ("T2.1", "T2", "processing information, ideas and concepts",
             "Verarbeitung von Informationen, Ideen und Konzepten"),
}  # fmt: skip
GROUP: dict[str, str] = {k: f"{ESCO}/skill/{_uuid('group/' + k)}" for k in GROUPS}

# ------------------------------------------------------------------------------------------ occupations
# key: (ISCO code, en label, de label, en description, de description)
OCCUPATIONS: dict[str, tuple[str, str, str, str, str]] = {
    "developer": ("2512", "software developer", "Softwareentwickler/Softwareentwicklerin",
                  "Software developers implement or program all kinds of software systems.",
                  "Softwareentwickler implementieren oder programmieren alle Arten von Softwaresystemen."),
    "baker": ("7512", "baker", "Bäcker/Bäckerin",
              "Bakers make a wide range of breads, pastries, and other baked goods.",
              "Bäcker stellen eine große Auswahl an Broten, Feingebäck und anderen Backwaren her."),
    "welder": ("7212", "welder", "Schweißer/Schweißerin",
               "Welders operate welding equipment to fuse metal workpieces together.",
               "Schweißer bedienen Schweißgeräte, um Werkstücke aus Metall miteinander zu verbinden."),
    "nurse": ("2221", "nurse responsible for general care", "Pflegefachkraft für allgemeine Pflege",
              "Nurses responsible for general care promote and restore the health of patients.",
              "Pflegefachkräfte für allgemeine Pflege fördern und erhalten die Gesundheit von Patienten."),
    "accountant": ("2411", "accountant", "Buchhalter/Buchhalterin",
                   "Accountants review and analyse financial statements and records.",
                   "Buchhalter prüfen und analysieren Abschlüsse und Finanzunterlagen."),
    "bike_mechanic": ("7231", "bicycle mechanic", "Fahrradmechaniker/Fahrradmechanikerin",
                      "Bicycle mechanics maintain and repair a variety of bicycle models.",
                      "Fahrradmechaniker warten und reparieren unterschiedliche Fahrradmodelle."),
    "data_analyst": ("2511", "data analyst", "Datenanalyst/Datenanalystin",
                     "Data analysts import, inspect, clean, transform and model data.",
                     "Datenanalysten importieren, prüfen, bereinigen, transformieren und modellieren Daten."),
    "shop_assistant": ("5223", "shop assistant", "Verkäufer/Verkäuferin",
                       "Shop assistants sell goods and services to customers in a shop.",
                       "Verkäufer verkaufen Waren und Dienstleistungen an Kundinnen und Kunden im Geschäft."),
}  # fmt: skip
OCCUPATION: dict[str, str] = {k: f"{ESCO}/occupation/{_uuid('occupation/' + k)}" for k in OCCUPATIONS}
UNKNOWN_OCCUPATION = f"{ESCO}/occupation/{_uuid('occupation/not-in-the-release')}"

# Labels of the occupations beyond the preferred one, per language: (alternative labels, hidden labels).
# "Python programmer" is an alternative label of two occupations (an ambiguous label); the German
# preferred labels carry both gendered forms ("Bäcker/Bäckerin"), some alternative labels one of them.
OCCUPATION_LABELS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "developer": {"en": (("software engineer", "programmer", "Python programmer"), ("sofware developer",)),
                  "de": (("Programmierer/Programmiererin", "Softwareingenieur"), ())},
    "baker": {"en": (("bread maker", "pastry baker"), ("bakker",)),
              "de": (("Bäckerin", "Brotbäcker/Brotbäckerin"), ("Becker",))},
    "welder": {"en": (("welding operator",), ()), "de": (("Schweißerin",), ())},
    "nurse": {"en": (("general nurse", "registered nurse"), ()),
              "de": (("Krankenpfleger/Krankenschwester", "Pflegefachfrau/Pflegefachmann"), ())},
    "accountant": {"en": (("financial accountant", "bookkeeper"), ()), "de": (("Bilanzbuchhalter",), ())},
    "bike_mechanic": {"en": (("bike mechanic", "cycle mechanic"), ()),
                      "de": (("Zweiradmechaniker/Zweiradmechanikerin",), ())},
    "data_analyst": {"en": (("data analytics specialist", "Python programmer"), ()),
                     "de": (("Datenanalytiker",), ())},
    "shop_assistant": {"en": (("sales assistant", "retail assistant"), ()), "de": (("Verkaufskraft",), ())},
}  # fmt: skip
# The nurse is a regulated profession in ESCO; the others are not.
REGULATED = {"nurse"}

# ISCO-08 groups above the occupations: code -> (en label, de label). A group's parent is its code minus
# the last digit.
ISCO_GROUPS: dict[str, tuple[str, str]] = {
    "2": ("Professionals", "Akademische Berufe"),
    "22": ("Health professionals", "Akademische und verwandte Gesundheitsberufe"),
    "222": ("Nursing and midwifery professionals", "Akademische und vergleichbare Krankenpflege- und Geburtshilfefachkräfte"),
    "2221": ("Nursing professionals", "Akademische und vergleichbare Krankenpflegefachkräfte"),
    "24": ("Business and administration professionals", "Akademische und vergleichbare Fachkräfte in betriebswirtschaftlichen und kaufmännischen Berufen"),
    "241": ("Finance professionals", "Akademische und vergleichbare Fachkräfte im Finanzwesen"),
    "2411": ("Accountants", "Wirtschaftsprüfer, Steuerberater und verwandte Berufe"),
    "25": ("Information and communications technology professionals", "Akademische und vergleichbare Fachkräfte in der Informations- und Kommunikationstechnologie"),
    "251": ("Software and applications developers and analysts", "Entwickler und Analytiker von Software und Anwendungen"),
    "2511": ("Systems analysts", "Systemanalytiker"),
    "2512": ("Software developers", "Softwareentwickler"),
    "5": ("Service and sales workers", "Dienstleistungsberufe und Verkäufer"),
    "52": ("Sales workers", "Verkaufskräfte"),
    "522": ("Shop salespersons", "Verkaufskräfte in Handelsgeschäften"),
    "5223": ("Shop sales assistants", "Verkäufer in Handelsgeschäften"),
    "7": ("Craft and related trades workers", "Handwerks- und verwandte Berufe"),
    "72": ("Metal, machinery and related trades workers", "Metallarbeiter, Mechaniker und verwandte Berufe"),
    "721": ("Sheet and structural metal workers, moulders and welders, and related workers", "Blechkaltverformer, Baumetallverformer, Former (für Metallguss), Schweißer und verwandte Berufe"),
    "7212": ("Welders and flamecutters", "Schweißer und Brennschneider"),
    "723": ("Machinery mechanics and repairers", "Maschinenmechaniker und -schlosser"),
    "7231": ("Motor vehicle mechanics and repairers", "Kraftfahrzeugmechaniker und -schlosser"),
    "75": ("Food processing, wood working, garment and other craft and related trades workers", "Berufe in der Nahrungsmittelverarbeitung, Holzverarbeitung und Bekleidungsherstellung und verwandte handwerkliche Fachkräfte"),
    "751": ("Food processing and related trades workers", "Berufe in der Nahrungsmittelverarbeitung und verwandte handwerkliche Fachkräfte"),
    "7512": ("Bakers, pastry-cooks and confectionery makers", "Bäcker, Konditoren und Süßwarenhersteller"),
}  # fmt: skip
# Occupation -> broader occupation (ESCO's occupation pillar below the ISCO groups): the bicycle mechanic
# sits under the welder here only to give the fixture one occupation-to-occupation edge.
BROADER_OCCUPATION = {"bike_mechanic": "welder"}


def isco_uri(code: str) -> str:
    """The ESCO URI of an ISCO-08 group."""
    return f"{ESCO}/isco/C{code}"

# ------------------------------------------------------------------------------------------ skills
ZWSP = "\u200b"
NBSP = "\u00a0"


def _skill(key, skill_type, reuse, broader, en, de, *, status="released", collections=(), uri_key=None):
    return {
        "key": key, "uri_key": uri_key or key, "skill_type": skill_type, "reuse": reuse, "broader": broader,
        "en": en, "de": de, "status": status, "collections": collections,
    }  # fmt: skip


# Each language: (preferred label, altLabels cell, hiddenLabels cell, description cell) - raw cells.
SKILL_ROWS: list[dict] = [
    _skill("python", "knowledge", "sector-specific", ["K0613"],
           ("Python (computer programming)", "Python programming\nPython", "",
            "The techniques and principles of software development, such as analysis, algorithms, coding, "
            "testing and compiling of programming paradigms in Python."),
           ("Python (Computerprogrammierung)", "Python-Programmierung\nPython", "",
            "Die Techniken und Grundsätze der Softwareentwicklung wie Analyse, Algorithmen, Codierung, Testen "
            "und Kompilieren von Programmierparadigmen in Python."),
           collections=("digital",)),
    _skill("scripting", "skill/competence", "cross-sector", ["S5.1"],
           ("use scripting programming", "use scripting languages\nwrite scripts", "",
            "Utilise specialised ICT tools to create computer code that is interpreted by the corresponding "
            "run-time environments in order to extend applications and automate common computer operations, "
            "using languages such as Unix Shell scripts, JavaScript, Python and Ruby."),
           ("Skriptprogrammierung verwenden", "Skriptsprachen verwenden\nSkripte schreiben", "",
            "Spezialisierte IKT-Werkzeuge nutzen, um Computercode zu erstellen, der von der jeweiligen "
            "Laufzeitumgebung interpretiert wird, um Anwendungen zu erweitern und gängige Computervorgänge zu "
            "automatisieren, mit Sprachen wie Unix-Shell-Skripten, JavaScript, Python und Ruby."),
           collections=("digital",)),
    # tricky: altLabels with surrounding whitespace, a zero-width space, the preferred label, a repeat,
    # an empty line; hiddenLabels; broader is a skill (skill->skill edge)
    _skill("automate", "skill/competence", "sector-specific", ["scripting"],
           ("automate tasks with Python scripts",
            f"  write Python scripts \nautomate{ZWSP} tasks with Python scripts\nPython scripting\n"
            "write Python scripts\n\n script automation  ",
            "py scripts",
            "Write small Python programs that automate repetitive work such as renaming files, cleaning "
            "spreadsheets or downloading reports."),
           ("Aufgaben mit Python-Skripten automatisieren",
            f"  Python-Skripte schreiben \nAufgaben mit Python{ZWSP}-Skripten automatisieren\n"
            "Python-Skripting\nPython-Skripte schreiben\n\n Skriptautomatisierung  ",
            "Py-Skripte",
            "Kleine Python-Programme schreiben, die wiederkehrende Arbeiten automatisieren, zum Beispiel "
            "Dateien umbenennen, Tabellen bereinigen oder Berichte herunterladen."),
           collections=("digital",)),
    # tricky: line breaks (and a non-breaking space) inside a quoted description
    _skill("bread", "skill/competence", "sector-specific", ["S6.3"],
           ("bake bread", "make bread\nproduce bread\nbake bread", "",
            f"Perform all the steps of baking bread, from mixing and kneading the dough and letting it rise\n"
            f"to shaping the loaves and baking them in the oven at the right{NBSP}temperature.\n"),
           ("Brot backen", "Brot herstellen\nBrot backen", "",
            "Alle Arbeitsschritte des Brotbackens ausführen, vom Mischen und Kneten des Teigs über das\n"
            f"Gehenlassen bis zum Formen der Laibe und zum Backen im Ofen bei der richtigen{NBSP}Temperatur.\n")),
    _skill("welding_equipment", "skill/competence", "cross-sector", ["S8.2"],
           ("use welding equipment", "operate welding equipment\nhandle welding tools", "",
            "Operate welding equipment in a safe manner; use welding techniques such as shielded metal arc "
            "welding or flux-cored arc welding."),
           ("Schweißausrüstung verwenden", "Schweißgeräte bedienen\nSchweißwerkzeuge handhaben", "",
            "Schweißausrüstung sicher bedienen; Schweißtechniken wie das Lichtbogenhandschweißen oder das "
            "Fülldrahtschweißen anwenden.")),
    _skill("welding_techniques", "knowledge", "sector-specific", ["K0715"],
           ("welding techniques", "welding methods", "",
            "The different methods of welding together pieces of metal using various equipment, such as "
            "oxygen-acetylene welding, gas metal arc welding and tungsten inert gas welding."),
           ("Schweißtechniken", "Schweißverfahren", "",
            "Die verschiedenen Verfahren zum Verschweißen von Metallteilen mit unterschiedlicher Ausrüstung, "
            "etwa Autogenschweißen, Metallschutzgasschweißen und Wolfram-Inertgasschweißen.")),
    _skill("patient_care", "skill/competence", "sector-specific", ["S3.2"],
           ("provide basic care to patients", "care for patients\nassist patients with daily activities", "",
            "Assist patients with the activities of daily living, such as washing, dressing, eating and "
            "moving, and watch for changes in their condition."),
           ("Patientinnen und Patienten grundpflegerisch versorgen",
            "Patienten pflegen\nPatienten bei alltäglichen Verrichtungen unterstützen", "",
            "Patientinnen und Patienten bei den Aktivitäten des täglichen Lebens wie Waschen, Anziehen, Essen "
            "und Bewegen unterstützen und auf Veränderungen ihres Zustands achten.")),
    _skill("german", "knowledge", "transversal", ["L1"],
           ("German", "German language", "", "The German language."),
           ("Deutsch", "deutsche Sprache", "", "Die deutsche Sprache."),
           collections=("language",)),
    # broader is a skill (skill->skill edge), as language skills are in ESCO
    _skill("german_speak", "skill/competence", "transversal", ["german"],
           ("interact verbally in German", "speak German\nconverse in German", "",
            "Communicate orally in German."),
           ("mündlich auf Deutsch kommunizieren", "Deutsch sprechen\nsich auf Deutsch unterhalten", "",
            "Mündlich auf Deutsch kommunizieren."),
           collections=("language",)),
    _skill("accounting", "knowledge", "cross-sector", ["K0411"],
           ("accounting", "accountancy\nbookkeeping", "",
            "The documentation and processing of data relating to financial activities."),
           ("Rechnungswesen", "Buchführung\nBuchhaltung", "",
            "Die Dokumentation und Verarbeitung von Daten über finanzielle Tätigkeiten.")),
    _skill("financial_records", "skill/competence", "cross-sector", ["S2.5"],
           ("keep financial records", "maintain financial records\nkeep the books", "",
            "Keep track of and finalise all formal documents representing the financial transactions of a "
            "business or project."),
           ("Finanzunterlagen führen", "Finanzaufzeichnungen pflegen\nBücher führen", "",
            "Alle förmlichen Unterlagen, die die Finanztransaktionen eines Unternehmens oder Projekts "
            "abbilden, verfolgen und abschließen.")),
    _skill("bicycles", "skill/competence", "occupation-specific", ["S8.5"],
           ("repair bicycles", "fix bikes\nbicycle repair", "bike mend",
            "Identify mechanical faults on bicycles, carry out interim or long-term repairs, replace worn parts "
            "such as chains, brakes and tyres, and adjust gears to the customer's needs."),
           ("Fahrräder reparieren", "Fahrradreparatur\nRäder reparieren", "Radl richten",
            "Mechanische Mängel an Fahrrädern erkennen, vorläufige oder dauerhafte Reparaturen durchführen, "
            "verschlissene Teile wie Ketten, Bremsen und Reifen ersetzen und die Schaltung an die Wünsche der "
            "Kundschaft anpassen.")),
    _skill("critical_thinking", "skill/competence", "transversal", ["T2.1"],
           ("think critically", "apply critical thinking\nreason critically", "",
            "Evaluate arguments, evidence and ideas carefully and with an open mind, identify their strengths "
            "and weaknesses, and draw reasoned conclusions."),
           ("kritisch denken", "kritisches Denken anwenden\nkritisch urteilen", "",
            "Argumente, Belege und Ideen sorgfältig und unvoreingenommen bewerten, ihre Stärken und Schwächen "
            "erkennen und begründete Schlussfolgerungen ziehen."),
           collections=("transversal",)),
    # two direct broader groups, at different levels
    _skill("spreadsheets", "skill/competence", "cross-sector", ["S5", "S2.5"],
           ("use spreadsheets software", "use spreadsheets\nwork with spreadsheet programs", "",
            "Use software tools to create and edit tabular data to carry out mathematical calculations, "
            "organise data and information, create diagrams based on data and to retrieve them."),
           ("Tabellenkalkulationssoftware verwenden", "Tabellenkalkulation nutzen\nmit Tabellenkalkulationsprogrammen arbeiten", "",
            "Softwarewerkzeuge verwenden, um tabellarische Daten zu erstellen und zu bearbeiten, mathematische "
            "Berechnungen durchzuführen, Daten und Informationen zu ordnen, Diagramme auf Grundlage von Daten "
            "zu erstellen und sie abzurufen."),
           collections=("digcomp", "digital")),
    _skill("waste", "skill/competence", "cross-sector", ["S6"],
           ("dispose of waste", "discard waste\nseparate waste for recycling", "",
            "Dispose of waste in accordance with legislation, respecting environmental and company "
            "responsibilities, and separate materials so that they can be recycled."),
           ("Abfälle entsorgen", "Müll entsorgen\nAbfälle für das Recycling trennen", "",
            "Abfälle gemäß den Rechtsvorschriften unter Beachtung der Umwelt- und Unternehmensverantwortung "
            "entsorgen und Materialien trennen, damit sie wiederverwertet werden können."),
           collections=("green",)),
    _skill("solar", "skill/competence", "sector-specific", ["S8.5"],
           ("install solar panels", "mount photovoltaic panels\ninstall PV modules", "",
            "Install photovoltaic panels on roofs or other structures, fix the mounting system securely and "
            "connect the panels to the electrical grid."),
           ("Solarmodule installieren", "Photovoltaikmodule montieren\nPV-Module installieren", "",
            "Photovoltaikmodule auf Dächern oder anderen Bauwerken installieren, das Montagesystem sicher "
            "befestigen und die Module an das Stromnetz anschließen."),
           collections=("green",)),
    _skill("research", "skill/competence", "cross-sector", ["S2"],
           ("perform scientific research", "conduct scientific research\ncarry out research", "",
            "Gain, correct or improve knowledge about phenomena by using scientific methods and techniques, "
            "based on empirical or measurable observations."),
           ("wissenschaftliche Forschung betreiben", "wissenschaftlich forschen\nForschung durchführen", "",
            "Mithilfe wissenschaftlicher Methoden und Techniken auf der Grundlage empirischer oder messbarer "
            "Beobachtungen Erkenntnisse über Phänomene gewinnen, berichtigen oder verbessern."),
           collections=("research",)),
    # tricky: empty description, empty reuseLevel
    _skill("cash_register", "skill/competence", "", ["S5"],
           ("operate cash register", "use a till\nwork a cash register", "", ""),
           ("Registrierkasse bedienen", "Kasse bedienen\nan der Kasse arbeiten", "", "")),
    # tricky: empty skillType (as in 6 skills of ESCO v1.1.1); broader a top-level group
    _skill("empathy", "", "transversal", ["T"],
           ("show empathy", "empathise with others\nbe empathetic", "",
            "Recognise, understand and share the emotions and feelings of another person, and respond to them "
            "with care."),
           ("Empathie zeigen", "sich in andere einfühlen\neinfühlsam sein", "",
            "Die Gefühle und Empfindungen einer anderen Person erkennen, verstehen und teilen und einfühlsam "
            "darauf reagieren."),
           collections=("transversal",)),
    _skill("forklift", "skill/competence", "cross-sector", ["S8"],
           ("operate forklift", "drive a forklift\nuse a forklift truck", "",
            "Operate a forklift, a vehicle with a pronged device in front for lifting and carrying heavy "
            "loads."),
           ("Gabelstapler bedienen", "Gabelstapler fahren\nStapler bedienen", "",
            "Einen Gabelstapler bedienen, ein Fahrzeug mit einer Gabelvorrichtung an der Vorderseite zum Heben "
            "und Tragen schwerer Lasten.")),
    # tricky: not released -> skipped (and a relation to it is dropped)
    _skill("fax", "skill/competence", "cross-sector", ["S5"],
           ("use fax machines", "send faxes", "", "Send and receive documents with a fax machine."),
           ("Faxgeräte bedienen", "Faxe senden", "", "Dokumente mit einem Faxgerät senden und empfangen."),
           status="obsolete"),
    # tricky: duplicate concept URI (of "bread") -> skipped, the first row wins
    _skill("bread_duplicate", "skill/competence", "sector-specific", [],
           ("bake breads", "", "", "A second row for the same concept."),
           ("Brote backen", "", "", "Eine zweite Zeile für dasselbe Konzept."),
           uri_key="bread"),
    # tricky: preferred label that is empty once cleaned (a zero-width space and blanks) -> skipped
    _skill("no_label", "skill/competence", "cross-sector", ["S"],
           (f" {ZWSP} ", "", "", "A skill row whose preferred label is empty."),
           (f" {ZWSP} ", "", "", "Eine Zeile ohne bevorzugte Bezeichnung.")),
]  # fmt: skip
SKILL: dict[str, str] = {r["key"]: f"{ESCO}/skill/{_uuid('skill/' + r['uri_key'])}" for r in SKILL_ROWS
                         if r["key"] == r["uri_key"]}
UNKNOWN_SKILL = f"{ESCO}/skill/{_uuid('skill/not-in-the-release')}"
KEPT_SKILLS = [r["key"] for r in SKILL_ROWS if r["status"] == "released" and r["key"] == r["uri_key"]
               and r["key"] != "no_label"]

# ------------------------------------------------------------------------------------------ relations
# (occupation key or URI, relation type, skill key or URI)
RELATIONS: list[tuple[str, str, str]] = [
    ("developer", "essential", "scripting"), ("developer", "essential", "critical_thinking"),
    ("developer", "optional", "python"), ("developer", "optional", "automate"),
    ("developer", "optional", "spreadsheets"), ("developer", "optional", "fax"),  # fax: not released
    ("baker", "essential", "bread"), ("baker", "essential", "waste"),
    ("baker", "optional", "german_speak"), ("baker", "optional", "cash_register"),
    ("welder", "essential", "welding_equipment"), ("welder", "essential", "welding_techniques"),
    ("welder", "optional", "forklift"), ("welder", "optional", "waste"),
    ("nurse", "essential", "patient_care"), ("nurse", "essential", "empathy"),
    ("nurse", "optional", "german_speak"), ("nurse", "optional", "german"),
    ("accountant", "essential", "accounting"), ("accountant", "essential", "financial_records"),
    ("accountant", "essential", "spreadsheets"), ("accountant", "optional", "critical_thinking"),
    ("accountant", "optional", UNKNOWN_SKILL),
    ("bike_mechanic", "essential", "bicycles"), ("bike_mechanic", "optional", "cash_register"),
    ("bike_mechanic", "optional", "waste"),
    ("data_analyst", "essential", "spreadsheets"), ("data_analyst", "essential", "critical_thinking"),
    ("data_analyst", "essential", "python"), ("data_analyst", "optional", "research"),
    ("data_analyst", "optional", "automate"),
    ("shop_assistant", "essential", "cash_register"), ("shop_assistant", "optional", "german_speak"),
    (UNKNOWN_OCCUPATION, "essential", "bread"),
]  # fmt: skip

COLLECTION_STEMS = {
    "digital": "digitalSkillsCollection", "green": "greenSkillsCollection",
    "transversal": "transversalSkillsCollection", "language": "languageSkillsCollection",
    "research": "researchSkillsCollection", "digcomp": "digCompSkillsCollection",
}  # fmt: skip  (no ictSkillsCollection: like v1.1.1, where it became the digital collection)

# ------------------------------------------------------------------------------------------ writing
IN_SCHEME = f"{ESCO}/concept-scheme/skills,\n{ESCO}/concept-scheme/member-skills"
MODIFIED = "2022-09-13T10:00:00Z"


def _csv(header: list[str], rows: list[list[str]], bom: bool = False) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8")


def _skill_uri(key: str) -> str:
    return key if key.startswith("http") else SKILL[key]


def _occ_uri(key: str) -> str:
    return key if key.startswith("http") else OCCUPATION[key]


def _broader_uri(key: str) -> tuple[str, str]:
    if key in GROUPS:
        return "SkillGroup", GROUP[key]
    return "KnowledgeSkillCompetence", SKILL[key]


def _label(lang: str, uri: str) -> str:
    for r in SKILL_ROWS:
        if _skill_uri(r["uri_key"]) == uri and r["key"] == r["uri_key"]:
            return r[lang][0]
    for k, g in GROUPS.items():
        if GROUP[k] == uri:
            return g[2] if lang == "en" else g[3]
    for k, o in OCCUPATIONS.items():
        if OCCUPATION[k] == uri:
            return o[1] if lang == "en" else o[2]
    return ""


def _skills_csv(lang: str, bom: bool) -> bytes:
    header = ["conceptType", "conceptUri", "skillType", "reuseLevel", "preferredLabel", "altLabels",
              "hiddenLabels", "status", "modifiedDate", "scopeNote", "definition", "inScheme", "description"]
    rows = []
    for r in SKILL_ROWS:
        label, alt, hidden, desc = r[lang]
        rows.append(["KnowledgeSkillCompetence", _skill_uri(r["uri_key"]), r["skill_type"], r["reuse"], label,
                     alt, hidden, r["status"], MODIFIED, "", "", IN_SCHEME, desc])
    return _csv(header, rows, bom)


def _occupations_csv(lang: str, v12: bool) -> bytes:
    header = ["conceptType", "conceptUri", "iscoGroup", "preferredLabel", "altLabels", "hiddenLabels", "status",
              "modifiedDate", "regulatedProfessionNote", "scopeNote", "definition", "inScheme", "description",
              "code"] + (["naceCode"] if v12 else [])
    rows = []
    for i, (k, (isco, en, de, den, dde)) in enumerate(OCCUPATIONS.items()):
        label, desc = (en, den) if lang == "en" else (de, dde)
        alts, hidden = OCCUPATION_LABELS[k][lang]
        regulated = "regulated" if k in REGULATED else "unregulated"
        row = ["Occupation", OCCUPATION[k], isco, label, "\n".join(alts), "\n".join(hidden), "released", MODIFIED,
               f"{ESCO}/regulated-professions/{regulated}", "", "", f"{ESCO}/concept-scheme/occupations",
               desc, f"{isco}.{i + 1}"]
        rows.append(row + ([""] if v12 else []))
    return _csv(header, rows)


def _isco_csv(lang: str) -> bytes:
    header = ["conceptType", "conceptUri", "code", "preferredLabel", "status", "altLabels", "inScheme", "description"]
    rows = [["ISCOGroup", isco_uri(code), code, en if lang == "en" else de, "released", "",
             f"{ESCO}/concept-scheme/occupations,\n{ESCO}/concept-scheme/isco", ""]
            for code, (en, de) in ISCO_GROUPS.items()]
    return _csv(header, rows)


def _occ_broader_csv(lang: str | None) -> bytes:
    if lang is None:
        header = ["conceptType", "conceptUri", "broaderType", "broaderUri"]
    else:
        header = ["conceptType", "conceptUri", "conceptLabel", "broaderType", "broaderUri", "broaderLabel"]

    def isco_label(code: str) -> str:
        return ISCO_GROUPS[code][0 if lang == "en" else 1]

    edges: list[list[str]] = []
    for code in ISCO_GROUPS:
        if len(code) > 1:
            edges.append(["ISCOGroup", isco_uri(code), "" if lang is None else isco_label(code),
                          "ISCOGroup", isco_uri(code[:-1]), "" if lang is None else isco_label(code[:-1])])
    for k, (isco, *_rest) in OCCUPATIONS.items():
        if k in BROADER_OCCUPATION:
            b = BROADER_OCCUPATION[k]
            edges.append(["Occupation", OCCUPATION[k], _label(lang or "en", OCCUPATION[k]),
                          "Occupation", OCCUPATION[b], _label(lang or "en", OCCUPATION[b])])
        else:
            edges.append(["Occupation", OCCUPATION[k], _label(lang or "en", OCCUPATION[k]),
                          "ISCOGroup", isco_uri(isco), isco_label(isco) if lang else ""])
    if lang is None:
        edges = [[e[0], e[1], e[3], e[4]] for e in edges]
    return _csv(header, edges)


def _groups_csv(lang: str) -> bytes:
    header = ["conceptType", "conceptUri", "preferredLabel", "altLabels", "hiddenLabels", "status",
              "modifiedDate", "scopeNote", "inScheme", "description", "code"]
    rows = [["SkillGroup", GROUP[k], en if lang == "en" else de, "", "", "released", MODIFIED, "",
             f"{ESCO}/concept-scheme/skills-hierarchy", "", code]
            for k, (code, _parent, en, de) in GROUPS.items()]
    return _csv(header, rows)


def _relations_csv(lang: str | None) -> bytes:
    if lang is None:
        header = ["occupationUri", "relationType", "skillType", "skillUri"]
    else:
        header = ["occupationUri", "occupationLabel", "relationType", "skillType", "skillUri", "skillLabel"]
    types = {_skill_uri(r["uri_key"]): r["skill_type"] for r in SKILL_ROWS}
    rows = []
    for occ, rel, skill in RELATIONS:
        o, s = _occ_uri(occ), _skill_uri(skill)
        t = types.get(s, "skill/competence")
        if lang is None:
            rows.append([o, rel, t, s])
        else:
            rows.append([o, _label(lang, o), rel, t, s, _label(lang, s)])
    return _csv(header, rows)


def _broader_csv(lang: str | None) -> bytes:
    if lang is None:
        header = ["conceptType", "conceptUri", "broaderType", "broaderUri"]
    else:
        header = ["conceptType", "conceptUri", "conceptLabel", "broaderType", "broaderUri", "broaderLabel"]
    edges: list[tuple[str, str, str, str]] = []
    for k, (_code, parent, _en, _de) in GROUPS.items():
        if parent is not None:
            edges.append(("SkillGroup", GROUP[k], "SkillGroup", GROUP[parent]))
    for r in SKILL_ROWS:
        if r["key"] != r["uri_key"]:
            continue
        for b in r["broader"]:
            bt, bu = _broader_uri(b)
            edges.append(("KnowledgeSkillCompetence", SKILL[r["key"]], bt, bu))
    rows = []
    for ct, cu, bt, bu in edges:
        rows.append([ct, cu, bt, bu] if lang is None else [ct, cu, _label(lang, cu), bt, bu, _label(lang, bu)])
    return _csv(header, rows)


def _collection_csv(lang: str, key: str) -> bytes:
    header = ["conceptType", "conceptUri", "preferredLabel", "status", "skillType", "reuseLevel", "altLabels",
              "description", "broaderConceptUri", "broaderConceptPT"]
    rows = []
    for r in SKILL_ROWS:
        if key not in r["collections"]:
            continue
        label, alt, _hidden, desc = r[lang]
        bt, bu = _broader_uri(r["broader"][0])
        rows.append(["KnowledgeSkillCompetence", SKILL[r["key"]], label, r["status"], r["skill_type"], r["reuse"],
                     " | ".join(a.strip() for a in alt.split("\n") if a.strip()), desc, bu, _label(lang, bu)])
    return _csv(header, rows)


def fixture_files() -> dict[str, bytes]:
    """Every fixture file, by path relative to ``esco_mini/``."""
    files: dict[str, bytes] = {}
    rel_dir = f"{V11_VERSION}/esco_{V11_VERSION}_relations_csv"
    files[f"{rel_dir}/occupationSkillRelations.csv"] = _relations_csv(None)
    files[f"{rel_dir}/broaderRelationsSkillPillar.csv"] = _broader_csv(None)
    for lang in LANGUAGES:
        d11 = f"{V11_VERSION}/esco_{V11_VERSION}_classification_{lang}_csv"
        d12 = V12_VERSION
        for d, v12 in ((d11, False), (d12, True)):
            # the German v1.1 skills file starts with a UTF-8 byte order mark (accepted silently)
            files[f"{d}/skills_{lang}.csv"] = _skills_csv(lang, bom=(lang == "de" and not v12))
            files[f"{d}/occupations_{lang}.csv"] = _occupations_csv(lang, v12)
            files[f"{d}/skillGroups_{lang}.csv"] = _groups_csv(lang)
            files[f"{d}/ISCOGroups_{lang}.csv"] = _isco_csv(lang)
            for key, stem in COLLECTION_STEMS.items():
                files[f"{d}/{stem}_{lang}.csv"] = _collection_csv(lang, key)
        files[f"{d12}/occupationSkillRelations_{lang}.csv"] = _relations_csv(lang)
        files[f"{d12}/broaderRelationsSkillPillar_{lang}.csv"] = _broader_csv(lang)
        files[f"{d12}/broaderRelationsOccPillar_{lang}.csv"] = _occ_broader_csv(lang)
    files[f"{rel_dir}/broaderRelationsOccPillar.csv"] = _occ_broader_csv(None)
    return files


def write_fixtures(root: Path = ROOT) -> list[Path]:
    written = []
    for rel, data in sorted(fixture_files().items()):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written.append(p)
    return written


def zip_release(layout: str, dest: Path) -> list[Path]:
    """Zip the committed fixture of a layout into ``dest`` the way ESCO ships it; returns the zips.

    ``"v1.1"``: ``esco_v1.1.9_classification_en_csv.zip``, ``..._de_csv.zip`` and
    ``esco_v1.1.9_relations_csv.zip``, files at the top of each zip.
    ``"v1.2"``: one ``ESCO dataset - v1.2.9 - classification - csv.zip`` whose files (both languages) sit
    in a top-level folder of the same name.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    if layout == "v1.1":
        for folder in V11_FOLDERS:
            z = dest / f"{folder}.zip"
            with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted((V11_DIR / folder).glob("*.csv")):
                    zf.write(f, f.name)
            out.append(z)
    elif layout == "v1.2":
        z = dest / f"{V12_ZIP_NAME}.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(V12_DIR.glob("*.csv")):
                zf.write(f, f"{V12_ZIP_NAME}/{f.name}")
        out.append(z)
    else:
        raise ValueError(f"layout must be 'v1.1' or 'v1.2', not {layout!r}")
    return out


if __name__ == "__main__":
    for p in write_fixtures(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(p.relative_to(HERE) if p.is_relative_to(HERE) else p)
