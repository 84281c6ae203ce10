"""The dbt project's packages are vendored (no network) and replace pmx's own look-alikes."""

import re
from importlib.metadata import version as installed_version

import yaml
from packaging.specifiers import SpecifierSet

from dagster_pmx.defs.transform.project import DBT_DIR, missing_packages

GENERIC_TEST = re.compile(r"{%-?\s*test\s+(\w+)\s*\(")


def _generic_tests(folder) -> set[str]:
    return {name for path in folder.rglob("*.sql") for name in GENERIC_TEST.findall(path.read_text())}


def test_every_package_is_vendored_installed_and_fits_the_installed_dbt():
    packages = yaml.safe_load((DBT_DIR / "packages.yml").read_text())["packages"]
    assert packages and all(set(p) == {"local"} for p in packages), "dbt's package hub is unreachable: vendor them"
    assert not missing_packages()  # loading the definitions ran `dbt deps`
    dbt_core = installed_version("dbt-core")
    for package in packages:
        project = yaml.safe_load((DBT_DIR / package["local"] / "dbt_project.yml").read_text())
        required = project["require-dbt-version"]
        spec = SpecifierSet(",".join(required) if isinstance(required, list) else required)
        assert dbt_core in spec, f"{project['name']} requires dbt {spec}; dbt-core {dbt_core} is installed"
        assert (DBT_DIR / package["local"] / "LICENSE").is_file()


def test_no_generic_test_of_pmx_duplicates_one_of_dbt_utils():
    ours = _generic_tests(DBT_DIR / "macros")
    theirs = _generic_tests(DBT_DIR / "vendor" / "dbt_utils" / "macros")
    assert {"expression_is_true", "unique_combination_of_columns", "accepted_range"} <= theirs
    assert ours == {"column_rules"}  # one query for all of a model's declared column rules: dbt_utils has none
    assert not ours & theirs
