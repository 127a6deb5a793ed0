"""The structured-output suite: 50 JSON Schemas, each with the request a user would send with it.

They cover what applications ask for: nested objects, arrays with minItems/maxItems, enums and consts, number
bounds (minimum/maximum, exclusive bounds, multipleOf), string patterns, lengths and formats, optional vs required
properties, `$defs`/`$ref` (also recursive), `anyOf`/`oneOf`, nullable types and pydantic-style output.
"""

from __future__ import annotations

S, I, N, B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}


def obj(properties: dict, required: list[str] | None = None, **extra) -> dict:
    """An object schema; required defaults to every property."""
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required, **extra}


def arr(items: dict, lo: int | None = None, hi: int | None = None, **extra) -> dict:
    schema = {"type": "array", "items": items, **extra}
    if lo is not None:
        schema["minItems"] = lo
    if hi is not None:
        schema["maxItems"] = hi
    return schema


NAME = {"type": "string", "maxLength": 40}
SHORT = {"type": "string", "maxLength": 80}

SCHEMAS: list[tuple[str, str, dict]] = [
    # --- flat objects, required and optional ------------------------------------------------------------------
    ("person", "Describe a fictional person: name and age.", obj({"name": NAME, "age": I})),
    ("city", "Give the capital of France and its country.", obj({"city": NAME, "country": NAME})),
    ("book", "Recommend a book: title, author, year.", obj({"title": SHORT, "author": NAME, "year": I})),
    ("flags", "Is water wet? Is fire cold?", obj({"water_is_wet": B, "fire_is_cold": B})),
    ("optional_email", "A contact card for Ana; the phone number is optional.",
     obj({"name": NAME, "phone": {"type": "string", "pattern": "^[0-9 +-]{6,15}$"}}, ["name"])),
    ("all_optional", "Anything you know about the Moon, as JSON.",
     obj({"diameter_km": N, "has_atmosphere": B, "nickname": NAME}, [])),
    ("product", "A product listing for a red bicycle.",
     obj({"name": NAME, "price": {"type": "number", "minimum": 0}, "in_stock": B, "color": NAME})),
    ("nullable", "The middle name of Ada Lovelace, or null.",
     obj({"first": NAME, "middle": {"type": ["string", "null"], "maxLength": 40}, "last": NAME})),
    # --- enums and consts ---------------------------------------------------------------------------------------
    ("sentiment", "Classify the sentiment of: 'I love this phone!'",
     obj({"sentiment": {"enum": ["positive", "negative", "neutral"]}})),
    ("priority", "Triage this ticket: 'Server is down for all users.'",
     obj({"priority": {"enum": ["low", "medium", "high", "critical"]}, "summary": SHORT})),
    ("weekday", "What day comes after Monday?",
     obj({"day": {"enum": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]}})),
    ("const_version", "Emit a config object of version 2 named 'demo'.",
     obj({"version": {"const": 2}, "name": NAME})),
    ("enum_numbers", "Rate the movie Inception from 1 to 5.", obj({"stars": {"enum": [1, 2, 3, 4, 5]}})),
    ("mixed_enum", "Pick a setting for 'dark mode': on, off or null.",
     obj({"dark_mode": {"enum": ["on", "off", None]}})),
    # --- number bounds -----------------------------------------------------------------------------------------
    ("age_bounds", "How old is a typical university student?",
     obj({"age": {"type": "integer", "minimum": 16, "maximum": 40}})),
    ("percentage", "What share of Earth is covered by water, in percent?",
     obj({"percent": {"type": "number", "minimum": 0, "maximum": 100}})),
    ("temperature", "Today's weather in Oslo in January.",
     obj({"celsius": {"type": "number", "minimum": -60, "maximum": 60}, "snow": B})),
    ("exclusive", "A probability strictly between 0 and 1 that it rains tomorrow.",
     obj({"p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}})),
    ("negative_int", "A temperature below freezing, in whole degrees Celsius.",
     obj({"degrees": {"type": "integer", "maximum": -1, "minimum": -90}})),
    ("multiple_of", "Pick a number of eggs sold by the dozen (a multiple of 12, at most 120).",
     obj({"eggs": {"type": "integer", "multipleOf": 12, "minimum": 12, "maximum": 120}})),
    ("coordinates", "The latitude and longitude of Paris.",
     obj({"lat": {"type": "number", "minimum": -90, "maximum": 90},
          "lon": {"type": "number", "minimum": -180, "maximum": 180}})),
    # --- strings: patterns, lengths, formats --------------------------------------------------------------------
    ("zip_code", "A US ZIP code for New York.", obj({"zip": {"type": "string", "pattern": "^[0-9]{5}$"}})),
    ("hex_color", "The hex color code of pure red.",
     obj({"color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}})),
    ("sku", "A stock-keeping unit code like ABC-1234 for a blue mug.",
     obj({"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}})),
    ("semver", "The version number of a software release.",
     obj({"version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"}})),
    ("lengths", "A username and a short bio.",
     obj({"username": {"type": "string", "minLength": 3, "maxLength": 16, "pattern": "^[a-z0-9_]+$"},
          "bio": {"type": "string", "maxLength": 60}})),
    ("email", "The contact email of a support desk.", obj({"email": {"type": "string", "format": "email"}})),
    ("date", "The date of the first Moon landing.", obj({"date": {"type": "string", "format": "date"}})),
    ("date_time", "When does the new year start in UTC?",
     obj({"when": {"type": "string", "format": "date-time"}})),
    ("uuid", "Make up an identifier for a new order.", obj({"order_id": {"type": "string", "format": "uuid"}})),
    ("ipv4", "The loopback IP address.", obj({"ip": {"type": "string", "format": "ipv4"}})),
    ("time_format", "What time is lunch, as a time of day?", obj({"time": {"type": "string", "format": "time"}})),
    # --- arrays ------------------------------------------------------------------------------------------------
    ("colors", "Name three primary colors.", obj({"colors": arr(NAME, 3, 3)})),
    ("tags", "Tags for a blog post about Python (1 to 5).", obj({"tags": arr(NAME, 1, 5)})),
    ("numbers", "List the first four prime numbers.", obj({"primes": arr(I, 4, 4)})),
    ("bounded_items", "Two to four ingredients of pancakes.",
     obj({"ingredients": arr(NAME, 2, 4)})),
    ("array_of_objects", "Two planets and their order from the Sun.",
     obj({"planets": arr(obj({"name": NAME, "position": {"type": "integer", "minimum": 1, "maximum": 8}}), 2, 2)})),
    ("top_level_array", "List three fruits as a JSON array of strings.", arr(NAME, 3, 3)),
    ("matrix", "A 2x2 identity matrix.", obj({"rows": arr(arr(I, 2, 2), 2, 2)})),
    ("prefix_items", "A point as [label, x, y].",
     {"type": "array", "prefixItems": [NAME, N, N], "items": False, "minItems": 3}),
    # --- nesting ------------------------------------------------------------------------------------------------
    ("address", "The address of a fictional shop in London.",
     obj({"name": NAME, "address": obj({"street": SHORT, "city": NAME, "postcode": NAME})})),
    ("order", "An order of two coffees for table 4.",
     obj({"table": I, "items": arr(obj({"item": NAME, "qty": {"type": "integer", "minimum": 1, "maximum": 9}}),
                                    1, 3), "paid": B})),
    ("deep", "A company with one department that has one team lead.",
     obj({"company": obj({"name": NAME, "department": obj({"name": NAME, "lead": obj({"name": NAME,
                                                                                    "email": {"type": "string",
                                                                                              "format": "email"}})})})})),
    # --- $defs / $ref --------------------------------------------------------------------------------------------
    ("defs_ref", "Sender and recipient of a letter.",
     {"$defs": {"party": obj({"name": NAME, "city": NAME})}, "type": "object",
      "properties": {"sender": {"$ref": "#/$defs/party"}, "recipient": {"$ref": "#/$defs/party"}},
      "required": ["sender", "recipient"]}),
    ("defs_array", "Two steps of a recipe.",
     {"$defs": {"step": obj({"n": {"type": "integer", "minimum": 1}, "text": SHORT})}, "type": "object",
      "properties": {"steps": arr({"$ref": "#/$defs/step"}, 2, 2)}, "required": ["steps"]}),
    ("recursive", "A tiny family tree: a parent with one child who has no children.",
     {"$defs": {"node": {"type": "object", "properties": {"name": NAME, "children": arr({"$ref": "#/$defs/node"},
                                                                                        0, 2)},
                         "required": ["name", "children"]}}, "$ref": "#/$defs/node"}),
    # --- anyOf / oneOf -------------------------------------------------------------------------------------------
    ("any_of_types", "The answer to 'how many legs does a spider have?' as a number or a word.",
     obj({"answer": {"anyOf": [I, NAME]}})),
    ("any_of_objects", "A payment: either a card (last four digits) or cash (amount).",
     obj({"payment": {"anyOf": [obj({"card_last4": {"type": "string", "pattern": "^[0-9]{4}$"}}),
                                obj({"cash": {"type": "number", "minimum": 0}})]}})),
    ("one_of", "A shape: a circle with a radius or a square with a side.",
     obj({"shape": {"oneOf": [obj({"kind": {"const": "circle"}, "radius": {"type": "number", "minimum": 0}}),
                              obj({"kind": {"const": "square"}, "side": {"type": "number", "minimum": 0}})]}})),
    ("pydantic_style", "Extract the event: 'Team meeting on 2025-03-14 at 10:00 in room B'.",
     {"title": "Event", "type": "object",
      "properties": {"title": {"title": "Title", "type": "string", "maxLength": 60},
                     "date": {"title": "Date", "type": "string", "format": "date"},
                     "room": {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}], "default": None}},
      "required": ["title", "date"]}),
]

assert len(SCHEMAS) == 50, len(SCHEMAS)
assert len({name for name, _, _ in SCHEMAS}) == len(SCHEMAS)
