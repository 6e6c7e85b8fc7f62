from nicegui import ui
from nicegui.testing import User


async def test_pages_render(viewer: User) -> None:
    await viewer.open("/")
    table = viewer.find(ui.table).elements.pop()
    assert {r["task_id"] for r in table.rows} >= {"task-ok"}
    await viewer.open("/tasks/task-ok")
    await viewer.should_see("Open settings and enable wifi")
    await viewer.should_see("Step 1 of 4")
    await viewer.open("/stats")
    await viewer.should_see("Most frequent errors")
    await viewer.open("/compare?a=task-ok&b=task-fail")
    await viewer.should_see("B − A step time: +6.64 s")
