"""The task page's delete button (only when the viewer's key may delete), with a confirmation."""

from __future__ import annotations

from nicegui import ui

from .. import operations
from ..data.base import DataSource
from ._common import FetchError, cut, fetch


def delete_button(source: DataSource, task_id: str, *, steps: int = 0) -> None:
    """A "Delete" button opening a confirmation dialog; nothing at all when this viewer may not
    delete (a user's token, the anon key). On success the list page opens."""
    if not operations.can_delete(source):
        return

    async def confirm() -> None:
        if dialog is not None:
            dialog.close()
        try:
            result = await fetch(operations.delete_task, source, task_id)
        except FetchError as exc:
            ui.notify(f"Could not delete the task: {exc}", type="negative")
            return
        if result["task_ids"] == [task_id] and result["ok"]:
            ui.notify(
                f"Deleted task {cut(task_id, 80)} and {result['objects']} screenshot object(s)",
                type="positive",
            )
            ui.navigate.to("/")
            return
        why = "; ".join([*result["kept"].values(), *result["problems"]]) or "the task is no longer there"
        ui.notify(f"The task was not fully deleted: {cut(why, 300)}", type="warning")

    def build_dialog() -> ui.dialog:
        with (
            button.parent_slot or ui.context.client.layout,
            ui.dialog() as built,
            ui.card().mark("delete-dialog"),
        ):
            ui.label("Delete this task?").classes("text-lg font-bold")
            ui.label(
                f"Task {cut(task_id, 200)} and its {steps} step(s) are deleted, with the screenshots no "
                "other task uses. This cannot be undone."
            ).classes("break-all")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=built.close).props("flat").mark("cancel-delete")
                ui.button("Delete", icon="delete", color="negative", on_click=confirm).mark("confirm-delete")
        return built

    def ask() -> None:
        nonlocal dialog
        if dialog is None:  # built on first use: the page keeps a single dialog (its lightbox) until then
            dialog = build_dialog()
        dialog.open()

    dialog: ui.dialog | None = None
    button = (
        ui.button("Delete", icon="delete", on_click=ask)
        .props("outline dense color=negative")
        .mark("delete-task")
    )
