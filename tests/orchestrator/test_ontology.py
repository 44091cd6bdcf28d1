"""The WAZIUP ontologies: consistency of the data files, and the lookups discovery relies on."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import ontology
from orchestrator.ontology import load

ALL = {
    "sensing_devices": ontology.sensing_devices,
    "actuating_devices": ontology.actuating_devices,
    "quantity_kinds": ontology.quantity_kinds,
    "units": ontology.units,
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_ids_are_unique(name: str) -> None:
    ids = [e["id"] for e in ALL[name]()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(ALL))
def test_no_name_names_two_entries(name: str) -> None:
    # A lookup must never depend on file order: each normalized name belongs to one entry.
    owner: dict[str, str] = {}
    for entry in ALL[name]():
        for text in {ontology.normalize(n) for n in ontology.names_of(entry)}:
            assert owner.setdefault(text, entry["id"]) == entry["id"], text


@pytest.mark.parametrize("name", sorted(ALL))
def test_waziup_fields_are_present_and_typed(name: str) -> None:
    for entry in ALL[name]():
        for field in load.WAZIUP_FIELDS[name]:
            assert field in entry, (entry["id"], field)
        assert isinstance(entry["id"], str) and entry["id"]
        assert isinstance(entry["label"], str) and entry["label"]


def test_every_quantity_kinds_units_exist() -> None:
    unit_ids = {u["id"] for u in ontology.units()}
    for qk in ontology.quantity_kinds():
        assert qk["units"], qk["id"]
        assert set(qk["units"]) <= unit_ids, qk["id"]


@pytest.mark.parametrize("devices", [ontology.sensing_devices, ontology.actuating_devices])
def test_every_devices_quantity_kinds_exist(devices: Any) -> None:
    qk_ids = {q["id"] for q in ontology.quantity_kinds()}
    for device in devices():
        assert device["qk"], device["id"]
        assert set(device["qk"]) <= qk_ids, device["id"]


def test_every_unit_is_used_by_some_quantity_kind() -> None:
    used = {u for qk in ontology.quantity_kinds() for u in qk["units"]}
    assert {u["id"] for u in ontology.units()} == used


def test_the_reference_examples_are_present() -> None:
    # The brief's examples of WAZIUP's files, and the Sensor example of the WAZIUP reference
    # (iot-agents-lora-waziup.md §4.3: sensor_kind Thermometer, AirTemperature, DegreeCelsius).
    assert ontology.sensing_device_for("AirHumiditySensor") == {
        "id": "AirHumiditySensor", "label": "Air humidity sensor", "qk": ["AirHumidity"],
        "aliases": ["HU", "HUM", "RH", "hygrometer"],
    }
    air = ontology.quantity_kind_for("AirTemperature")
    assert air is not None
    assert air["label"] == "Air temperature"
    assert air["units"] == ["DegreeCelsius", "DegreeFahrenheit", "Kelvin"]
    assert ontology.units(extras=False)[0] == {"id": "DegreeCelsius", "label": "Degree Celsius"}
    thermometer = ontology.sensing_device_for("Thermometer")
    assert thermometer is not None and "AirTemperature" in thermometer["qk"]
    assert ontology.actuating_device_for("Buzzer") is not None


def test_extras_false_gives_exactly_the_waziup_fields() -> None:
    for name, read in ALL.items():
        for entry in read(extras=False):
            assert tuple(entry) == load.WAZIUP_FIELDS[name]


@pytest.mark.parametrize(
    ("text", "unit_id"),
    [
        ("DegreeCelsius", "DegreeCelsius"), ("degree celsius", "DegreeCelsius"),
        ("degC", "DegreeCelsius"), ("Cel", "DegreeCelsius"), ("CEL", "DegreeCelsius"),
        ("°C", "DegreeCelsius"), ("℃", "DegreeCelsius"), ("°F", "DegreeFahrenheit"),
        ("K", "Kelvin"), ("%", "Percent"), ("%RH", "Percent"), ("hPa", "HectoPascal"),
        ("HPA", "HectoPascal"), ("Pa", "Pascal"), ("lx", "Lux"), ("ppm", "PartsPerMillion"),
        ("V", "Volt"), ("mV", "Millivolt"), ("m", "Metre"), ("cm", "Centimetre"),
        ("mm", "Millimetre"), ("m/s", "MetrePerSecond"), ("km/h", "KilometrePerHour"),
        ("µg/m3", "MicrogramPerCubicMetre"), ("μg/m³", "MicrogramPerCubicMetre"),
        ("ug/m3", "MicrogramPerCubicMetre"), ("mS/cm", "MilliSiemensPerCentimetre"),
        ("pH", "PhUnit"), ("deg", "DegreeAngle"), ("  lx ", "Lux"),
    ],
)
def test_unit_for(text: str, unit_id: str) -> None:
    found = ontology.unit_for(text)
    assert found is not None and found["id"] == unit_id


@pytest.mark.parametrize(
    ("alias", "device_id", "qk_id"),
    [
        ("TC", "Thermometer", "AirTemperature"), ("tc", "Thermometer", "AirTemperature"),
        ("HU", "AirHumiditySensor", "AirHumidity"), ("LUM", "LightSensor", "Luminosity"),
        ("LU", "LightSensor", "Luminosity"), ("CO2", "CO2Sensor", "CO2Concentration"),
        ("BAT", "BatteryLevelSensor", "BatteryLevel"),
        ("PM25", "ParticulateMatterSensor", "PM25Concentration"),
        ("PM10", "ParticulateMatterSensor", "PM10Concentration"),
        ("DST", "DistanceSensor", "Distance"), ("SM", "SoilHumiditySensor", "SoilHumidity"),
        ("PA", "Barometer", "AtmosphericPressure"), ("WS", "Anemometer", "WindSpeed"),
        ("WD", "WindVane", "WindDirection"), ("RAIN", "RainGauge", "Precipitation"),
        ("WL", "WaterLevelSensor", "WaterLevel"), ("GPS", "GPSSensor", "Position"),
        ("ALT", "Altimeter", "Altitude"), ("PH", "PHSensor", "PH"),
        ("EC", "ConductivitySensor", "ElectricalConductivity"), ("PIR", "MotionSensor", "Motion"),
    ],
)
def test_gateway_sensor_names(alias: str, device_id: str, qk_id: str) -> None:
    device = ontology.sensing_device_for(alias)
    qk = ontology.quantity_kind_for(alias)
    assert device is not None and device["id"] == device_id
    assert qk is not None and qk["id"] == qk_id
    assert qk_id in device["qk"]


@pytest.mark.parametrize("text", ["", "furlong", "TCX", "Degrees Rankine"])
def test_unknown_names_find_nothing(text: str) -> None:
    assert ontology.unit_for(text) is None
    assert ontology.sensing_device_for(text) is None


def test_coverage_of_the_brief() -> None:
    qks = {q["id"] for q in ontology.quantity_kinds()}
    assert {
        "AirTemperature", "SoilTemperature", "WaterTemperature", "AirHumidity", "SoilHumidity",
        "AtmosphericPressure", "Luminosity", "Illuminance", "CO2Concentration", "WaterLevel",
        "Precipitation", "WindSpeed", "WindDirection", "BatteryLevel", "Voltage", "Position",
        "Altitude", "PM25Concentration", "PM10Concentration", "PH", "ElectricalConductivity",
        "Motion", "Presence", "Distance",
    } <= qks
    actuators = {a["id"] for a in ontology.actuating_devices()}
    assert {"Relay", "Valve", "Motor", "Buzzer", "LED", "Pump", "Switch"} <= actuators


def test_results_are_copies() -> None:
    ontology.units()[0]["label"] = "changed"
    found = ontology.unit_for("degC")
    assert found is not None
    found["symbols"].append("changed")
    assert ontology.units()[0]["label"] == "Degree Celsius"
    assert "changed" not in (ontology.unit_for("degC") or {})["symbols"]
