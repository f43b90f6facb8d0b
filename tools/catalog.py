"""The inspector's four tools, as the language model sees them.

Names, parameters, docstrings and observation keys are a contract with the training data: the model is
fine-tuned on dialogues that call exactly these. Their descriptions sit in every prompt of a small model,
so they are short. The work is done in `tools.workorders` and `tools.detection`, imported when a tool
runs, so reading the descriptions needs neither the database nor the detector stack.
"""

from typing import Annotated, Any

from pydantic import Field

from agent.reports import Check
from tools.context import ToolContext
from tools.observations import Observation
from tools.registry import Quoted, Registry, Tool, derive

Site = Annotated[str, Field(description="站点名称"), Quoted(site=True)]
OptionalSite = Annotated[str | None, Field(description="站点名称"), Quoted(site=True)]
Date = Annotated[str | None, Field(description="日期, 如 今天、5月3日, 默认今天"), Quoted()]
ImageDate = Annotated[str | None, Field(description="日期, 取当天及之前最新的图像, 默认最新"), Quoted()]
Image = Annotated[str | None, Field(description="图像路径, 代替站点和日期")]


def query_work_order(ctx: ToolContext, site: Site, check: Check, date: Date = None) -> Observation:
    """查询站点某天某项检查的工单: 应到人数、负责人、所发设备"""
    from tools.workorders import look_up

    return look_up(ctx, site, check, date)


def count_people(
    ctx: ToolContext, site: OptionalSite = None, date: ImageDate = None, image: Image = None
) -> Observation:
    """统计站点现场图像中的人数"""
    from tools.detection import observe

    return observe(ctx, "count_people", site, date, image)


def check_helmets(
    ctx: ToolContext, site: OptionalSite = None, date: ImageDate = None, image: Image = None
) -> Observation:
    """检查站点现场图像中的人员是否佩戴安全帽"""
    from tools.detection import observe

    return observe(ctx, "check_helmets", site, date, image)


def check_equipment(
    ctx: ToolContext, site: OptionalSite = None, date: ImageDate = None, image: Image = None
) -> Observation:
    """检查站点现场图像中的人员是否携带设备"""
    from tools.detection import observe

    return observe(ctx, "check_equipment", site, date, image)


TOOLS = (query_work_order, count_people, check_helmets, check_equipment)


def derived_tools() -> list[Tool]:
    """The four tools as the registry derives them, in a fixed order."""
    return [derive(tool) for tool in TOOLS]


def tool_descriptions() -> list[dict[str, Any]]:
    """The ChatGLM3 descriptions of the four tools, in a fixed order."""
    return [tool.description for tool in derived_tools()]


def build_registry(context: ToolContext) -> Registry:
    """The registry the agent calls its tools through."""
    registry = Registry(context)
    for tool in TOOLS:
        registry.add(tool)
    return registry
