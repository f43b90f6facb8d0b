"""Turns in lockstep: their model calls batched, each turn's result the same as on its own, a crash its own."""

from agent.backend import Generation
from agent.chatglm_format import Message
from agent.errors import ModelError
from agent.lockstep import run_together
from agent.state_machine import State
from tests.scripted import ScriptedBackend
from tests.test_state_machine import GREETING, agent, call

REPORT = "[人数检测] 应到47人, 实到34人, 有人缺勤"


def script(conversation: list[Message]) -> str:
    """A model that inspects the site the request names (济南 or 青岛), greets otherwise."""
    request = next(m.content for m in reversed(conversation) if m.role == "user")
    site = next((s for s in ("济南", "青岛") if s in request), None)
    if site is None:
        return GREETING
    done = [m.metadata for m in conversation if m.role == "assistant"]
    if "query_work_order" not in done:
        return call("query_work_order", site=site, check="人数检测")
    if "count_people" not in done:
        return call("count_people", site=site)
    return "\n[人数检测] 应到0人, 实到3人, 无工单出工, 可能存在非法进入" if site == "青岛" else f"\n{REPORT}"


class Batches(ScriptedBackend):
    """The scripted model, remembering how many conversations each call held."""

    def __init__(self) -> None:
        super().__init__(script)
        self.sizes: list[int] = []

    def generate(self, conversations: list[list[Message]], max_new_tokens: int = 128) -> list[Generation]:
        self.sizes.append(len(conversations))
        return super().generate(conversations, max_new_tokens)


REQUESTS = ["查查济南人数", "你好", "青岛人数怎么样", "", "查查济南人数"]


def test_turns_in_lockstep_batch_their_model_calls_and_end_as_they_would_alone():
    base, _ = agent()
    batched = Batches()
    base.backend = batched
    agents = [base.fork(base.registry) for _ in REQUESTS]
    turns = run_together(batched, [a.steps(text) for a, text in zip(agents, REQUESTS, strict=True)], 64)
    assert batched.sizes == [4, 3, 3]  # the empty request never reaches the model; the greeting ends at once

    alone = Batches()
    base.backend = alone
    expected = [base.fork(base.registry).turn(text) for text in REQUESTS]
    assert alone.sizes == [1] * 10
    assert [(t.state, t.reply) for t in turns] == [(t.state, t.reply) for t in expected]
    assert [t.state for t in turns] == [State.DONE, State.GREET, State.DONE, State.REJECTED, State.DONE]
    assert turns[0].reply == REPORT and not turns[0].flagged
    assert all(not a.memory.turns for a in agents[3:4]) and len(agents[0].memory.turns) == 1


def test_a_crashing_turn_is_its_own_result_and_a_failing_model_ends_the_batch():
    base, _ = agent()
    base.backend = Batches()

    def broken(text: str):
        yield [Message("user", text)]
        raise RuntimeError("tool bug")

    turns = run_together(base.backend, [broken("x"), base.fork(base.registry).steps("查查济南人数")], 64)
    assert isinstance(turns[0], RuntimeError) and turns[1].reply == REPORT

    class Failing(Batches):
        def generate(self, conversations, max_new_tokens=128):
            raise MemoryError("out of memory")

    failing = Failing()
    ended = run_together(failing, [base.fork(base.registry).steps(t) for t in ("查查济南人数", "你好", "")], 64)
    assert [type(e).__name__ for e in ended] == ["MemoryError", "MemoryError", "Turn"]

    class Forgetful(Batches):
        def generate(self, conversations, max_new_tokens=128):
            return super().generate(conversations[1:], max_new_tokens)

    short = run_together(Forgetful(), [base.fork(base.registry).steps(t) for t in ("查查济南人数", "你好")], 64)
    assert all(isinstance(e, ModelError) and "answered 1 of 2" in str(e) for e in short)
