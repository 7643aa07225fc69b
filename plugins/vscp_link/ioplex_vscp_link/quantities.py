"""What CLASS1.MEASUREMENT types measure and in which units (the spec's class1.measurement).

Type id → (name used in point names, {unit code: symbol}). Level II measurement classes use
the same types and units for types 0-255. The names are the spec's type tokens in lower
case (``VSCP_TYPE_MEASUREMENT_TEMPERATURE`` → ``temperature``), spelling slips fixed; the
symbols are the SI ones where the spec's table has a slip (bar and psi written as Pa, the
farad as C, the tesla as A).
"""

from __future__ import annotations

QUANTITIES: dict[int, tuple[str, dict[int, str]]] = {
    0: ("general", {}),
    1: ("count", {0: ""}),
    2: ("length", {0: "m"}),
    3: ("mass", {0: "kg"}),
    4: ("time", {0: "s", 1: "ms", 2: "yymdhms", 3: "HHMMSS"}),
    5: ("electric_current", {0: "A"}),
    6: ("temperature", {0: "K", 1: "°C", 2: "°F"}),
    7: ("amount_of_substance", {0: "mol"}),
    8: ("intensity_of_light", {0: "cd"}),
    9: ("frequency", {0: "Hz"}),
    10: ("radioactivity", {0: "Bq", 1: "Ci", 2: "Rd"}),
    11: ("force", {0: "N"}),
    12: ("pressure", {0: "Pa", 1: "bar", 2: "psi", 3: "atm", 4: "Torr", 5: "at", 6: "cmH2O"}),
    13: ("energy", {0: "J", 1: "kWh", 2: "Wh", 3: "eV"}),
    14: ("power", {0: "W", 1: "cv", 2: "hp"}),
    15: ("electrical_charge", {0: "C"}),
    16: ("electrical_potential", {0: "V"}),
    17: ("electrical_capacitance", {0: "F"}),
    18: ("electrical_resistance", {0: "Ω"}),
    19: ("electrical_conductance", {0: "S"}),
    20: ("magnetic_field_strength", {0: "A/m", 1: "Oe"}),
    21: ("magnetic_flux", {0: "Wb"}),
    22: ("magnetic_flux_density", {0: "T", 1: "G"}),
    23: ("inductance", {0: "H"}),
    24: ("flux_of_light", {0: "lm"}),
    25: ("illuminance", {0: "lx"}),
    26: ("radiation_dose_absorbed", {0: "Gy"}),
    27: ("catalytic_activity", {0: "kat"}),
    28: ("volume", {0: "m³", 1: "L", 2: "mL", 3: "dL", 4: "cL"}),
    29: ("sound_intensity", {0: "W/m²"}),
    30: ("angle", {0: "rad", 1: "°", 2: "arcmin", 3: "arcsec"}),
    31: ("position", {0: "longitude", 1: "latitude"}),
    32: ("speed", {0: "m/s", 1: "km/h", 2: "mph", 3: "kn"}),
    33: ("acceleration", {0: "m/s²"}),
    34: ("tension", {0: "N/m"}),
    35: ("humidity", {0: "%"}),
    36: ("flow", {0: "m³/s", 1: "L/s"}),
    37: ("thermal_resistance", {0: "K/W"}),
    38: ("refractive_power", {0: "dpt"}),
    39: ("dynamic_viscosity", {0: "Pa·s", 1: "P", 2: "Pl"}),
    40: ("sound_impedance", {0: "Pa·s/m³"}),
    41: ("sound_resistance", {0: "Pa·s/m³"}),
    42: ("electric_elastance", {0: "1/F"}),
    43: ("luminous_energy", {0: "lm·s"}),
    44: ("luminance", {0: "cd/m²"}),
    45: ("chemical_concentration_molar", {0: "mol/m³", 1: "mol/L"}),
    46: ("chemical_concentration_mass", {0: "kg/m³"}),
    49: ("dewpoint", {0: "K", 1: "°C", 2: "°F"}),
    50: ("relative_level", {0: ""}),
    51: ("altitude", {0: "m", 1: "ft", 2: "in"}),
    52: ("area", {0: "m²", 1: "a", 2: "ha", 3: "km²"}),
    53: ("radiant_intensity", {0: "W/sr"}),
    54: ("radiance", {0: "W/(sr·m²)"}),
    55: ("irradiance", {0: "W/m²"}),
    56: ("spectral_radiance", {0: "W/(sr·m³)", 1: "W/(sr·m²·nm)", 2: "W/(sr·m²·Hz)"}),
    57: ("spectral_irradiance", {0: "W/(m²·Hz)", 1: "W/m³", 2: "W/(m²·nm)"}),
    58: ("sound_pressure", {0: "Pa", 1: "dB"}),
    59: ("sound_density", {0: "Pa"}),
    60: ("sound_level", {0: "dB"}),
    61: ("radiation_dose_equivalent", {0: "Sv", 1: "rem"}),
    62: ("radiation_dose_exposure", {0: "C/kg", 1: "R"}),
    63: ("power_factor", {0: ""}),
    64: ("reactive_power", {0: "var", 1: "Mvar"}),
    65: ("reactive_energy", {0: "kvarh", 1: "Mvarh"}),
}


def quantity_name(vscp_type: int) -> str:
    """The name of a measurement type, ``type<n>`` for one the table does not know."""
    known = QUANTITIES.get(vscp_type)
    return known[0] if known else f"type{vscp_type}"


def unit_symbol(vscp_type: int, unit: int) -> str | None:
    """The symbol of a unit code of a measurement type, or None if the table does not know it."""
    known = QUANTITIES.get(vscp_type)
    return known[1].get(unit) if known else None


DATA_KINDS: dict[int, tuple[str, dict[int, str]]] = {
    0: ("general", {}),
    1: ("io_value", {}),
    2: ("ad_value", {}),
    3: ("da_value", {}),
    4: ("relative_strength", {1: "dB", 2: "dBV"}),
    5: ("signal_level", {0: "%"}),
    6: ("signal_quality", {0: "%"}),
    7: ("count", {}),
}
"""CLASS1.DATA types (spec class1.data.md) → (name, {unit code: symbol})."""


def data_kind_name(vscp_type: int) -> str:
    """The name of a CLASS1.DATA type, ``type<n>`` for one the spec does not define."""
    known = DATA_KINDS.get(vscp_type)
    return known[0] if known else f"type{vscp_type}"


def data_unit_symbol(vscp_type: int, unit: int) -> str | None:
    known = DATA_KINDS.get(vscp_type)
    return known[1].get(unit) if known else None
