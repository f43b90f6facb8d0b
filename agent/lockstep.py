"""Many agents' turns in lockstep: at each round, every unfinished turn's model request in one batched call.

The turns are independent (each agent has its own tools and memory); what they share is the model, and a
batch of prompts costs the model far less per prompt than the prompts one by one. A turn that raises is
that turn's result (the exception), never the others'.
"""

from agent.backend import ModelBackend
from agent.chatglm_format import Message
from agent.errors import ModelError
from agent.state_machine import Turn, TurnSteps


def run_together(backend: ModelBackend, turns: list[TurnSteps], max_new_tokens: int) -> list[Turn | Exception]:
    """Drive every turn to its end; returns each one's Turn, or the exception that ended it, in order."""
    finished: dict[int, Turn | Exception] = {}
    waiting: dict[int, list[Message]] = {}
    for index, steps in enumerate(turns):
        _advance(index, steps, None, waiting, finished)
    while waiting:
        indices = list(waiting)
        try:
            generations = backend.generate([waiting[index] for index in indices], max_new_tokens)
            if len(generations) != len(indices):
                raise ModelError(f"the model answered {len(generations)} of {len(indices)} conversations")
        except Exception as error:  # the model failed for this whole batch: every waiting turn ends with it
            finished |= {index: error for index in indices}
            break
        waiting.clear()
        for index, generation in zip(indices, generations, strict=True):
            _advance(index, turns[index], generation, waiting, finished)
    return [finished[index] for index in range(len(turns))]


def _advance(
    index: int,
    steps: TurnSteps,
    generation: object,
    waiting: dict[int, list[Message]],
    finished: dict[int, Turn | Exception],
) -> None:
    """Send the turn its generation (None to start it): it asks for the model again, or has finished."""
    try:
        waiting[index] = steps.send(generation)  # type: ignore[arg-type]
    except StopIteration as done:
        finished[index] = done.value
    except Exception as error:  # one item's crash is its own result
        finished[index] = error
