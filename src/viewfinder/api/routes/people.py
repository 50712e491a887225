"""Seed 001's people surface: unknown clusters and their labels, assigning faces, people,
dual-mode clustering, training the face-matching head, statistics."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field

from viewfinder.api.deps import library
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.params import DbInt, DbText
from viewfinder.api.routes.faces import FaceOut
from viewfinder.api.schemas_library import AssetOut, JobAcceptedOut, JobOut
from viewfinder.db.models import Person
from viewfinder.faces.dual_mode import DualOptions
from viewfinder.library.library import Library

router = APIRouter(
    prefix="/api/v1", tags=["people (seed 001)"], responses=error_responses(*ACCESS_STATUSES, 503)
)
LibraryDep = Annotated[Library, Depends(library)]
QUEUED = {"model": JobAcceptedOut, "description": "Queued (`queue`): the job to follow."}
Method = Literal["hdbscan", "dbscan", "agglomerative"]


class PersonIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class PersonPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    hidden: bool | None = None


class MergeIn(BaseModel):
    into: DbInt = Field(description="The person who keeps the faces.")


class PersonOut(BaseModel):
    id: int
    name: str
    hidden: bool
    faces: int = Field(description="How many faces are this person's.")
    created_at: datetime
    face_id: int | None = Field(
        None,
        description="The face to show for the person (a named one first, then the best "
        "quality); null without faces. Its picture: GET /api/v1/faces/{face_id}/thumbnail.",
    )
    thumbnail_url: str | None = Field(None, description="That face's thumbnail; null without.")

    @classmethod
    def of(
        cls, person: Person, faces: int, face_id: int | None = None, request: Request | None = None
    ) -> PersonOut:
        return cls(
            id=person.id,
            name=person.name,
            hidden=person.hidden,
            faces=faces,
            created_at=person.created_at,
            face_id=face_id,
            thumbnail_url=_thumbnail(request, face_id),
        )


def _thumbnail(request: Request | None, face_id: int | None) -> str | None:
    if request is None or face_id is None:
        return None
    return str(request.url_for("face_thumbnail", face_id=face_id))


class LabelIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class AssignIn(BaseModel):
    person_id: DbInt | None = None
    name: str | None = Field(None, min_length=1, max_length=200)


class ClusterOut(BaseModel):
    cluster_id: str
    size: int = Field(description="How many faces the cluster holds.")
    face_ids: list[int] = Field(description="Its faces, ascending.")
    face_id: int = Field(description="The face to show for it (the best quality).")
    thumbnail_url: str


class RejectIn(BaseModel):
    person_id: DbInt = Field(description="The person this face is not.")


class OrganizeIn(BaseModel):
    queue: bool = Field(
        False, description="true: queue the organise job now (202) instead of running it."
    )


class DualIn(BaseModel):
    person_threshold: float | None = Field(None, ge=-1, le=1)
    unknown_method: Method | None = None
    min_cluster_size: int | None = Field(None, ge=1)
    max_faces: int | None = Field(None, ge=1)
    queue: bool = False


class TrainIn(BaseModel):
    epochs: int | None = Field(None, ge=1, le=1000)
    margin: float | None = Field(None, gt=0, le=2)
    queue: bool = False


# --- unknown clusters -----------------------------------------------------------------------------


@router.get("/faces/clusters", response_model=list[ClusterOut])
def clusters(request: Request, lib: LibraryDep) -> list[ClusterOut]:
    """Unknown-face clusters, largest first: groups of faces to name."""
    return [
        ClusterOut(
            cluster_id=c.cluster_id,
            size=len(c.face_ids),
            face_ids=c.face_ids,
            face_id=c.face_id,
            thumbnail_url=str(request.url_for("face_thumbnail", face_id=c.face_id)),
        )
        for c in lib.people.clusters()
    ]


@router.delete(
    "/faces/clusters/{cluster_id}/faces/{face_id}",
    response_model=FaceOut,
    responses=error_responses(404),
)
def remove_from_cluster(
    cluster_id: DbText, face_id: DbInt, request: Request, lib: LibraryDep
) -> FaceOut:
    """Take a face out of an unknown cluster: no later run puts it back there, nor gives it
    the person the cluster is named as. 404 when the face is not in that cluster."""
    return FaceOut.of(lib.people.remove_from_cluster(cluster_id, face_id), request)


@router.post("/faces/organize", responses={202: QUEUED, **error_responses(400, 413)})
def organize(body: OrganizeIn, lib: LibraryDep, response: Response) -> dict[str, Any]:
    """Organise faces now: match them to the named people and group the rest, with the
    configured parameters (what the background ``faces_organize`` job does after uploads and
    corrections). 200 with the report, or with ``queue`` 202 and the job."""
    if body.queue:
        job = lib.people.organize_soon()
        response.status_code = status.HTTP_202_ACCEPTED
        return {"job_id": job.id, "job": JobOut.of(job).model_dump(mode="json")}
    return asdict(lib.people.organize())


@router.post("/faces/clusters/{cluster_id}/label", responses=error_responses(400, 404, 409, 413))
def label_cluster(cluster_id: DbText, body: LabelIn, lib: LibraryDep) -> dict[str, Any]:
    """Name every face of a cluster; an existing person of that name (any case) is reused."""
    person, labelled, skipped = lib.people.label_cluster(cluster_id, body.name)
    return {
        "person_id": person.id,
        "name": person.name,
        "faces_labeled": labelled,
        "faces_skipped": skipped,
    }


@router.post("/faces/cluster/dual", responses={202: QUEUED, **error_responses(400, 413)})
def cluster_dual(body: DualIn, lib: LibraryDep, response: Response) -> dict[str, Any]:
    """Match faces to known people, cluster the rest; ``queue`` runs it as a background job."""
    options = DualOptions.from_settings(
        lib.settings,
        body.person_threshold,
        body.unknown_method,
        body.min_cluster_size,
        body.max_faces,
    )
    if body.queue:
        job = lib.jobs.submit("faces_cluster_dual", asdict(options))
        response.status_code = status.HTTP_202_ACCEPTED
        return {"job_id": job.id, "job": JobOut.of(job).model_dump(mode="json")}
    return asdict(lib.people.cluster_dual(options))


@router.post("/faces/train", responses={202: QUEUED, **error_responses(400, 413)})
def train(body: TrainIn, lib: LibraryDep, response: Response) -> dict[str, Any]:
    """Train the face-matching head on labelled faces (triplet loss); it is used for matching
    and clustering only when it separates held-out people better than the untrained space."""
    epochs = body.epochs or lib.settings.face_training_epochs
    margin = body.margin or lib.settings.face_triplet_margin
    if body.queue:
        lib.people.check_trainable()  # 400 now, not a job that is accepted and then fails
        job = lib.jobs.submit("faces_train", {"epochs": epochs, "margin": margin})
        response.status_code = status.HTTP_202_ACCEPTED
        return {"job_id": job.id, "job": JobOut.of(job).model_dump(mode="json")}
    return asdict(lib.people.train(epochs, margin))


@router.get("/faces/stats")
def stats(lib: LibraryDep) -> dict[str, Any]:
    return lib.people.stats()


@router.post(
    "/faces/{face_id}/assign",
    response_model=FaceOut,
    responses=error_responses(400, 404, 409, 413),
)
def assign(face_id: DbInt, body: AssignIn, request: Request, lib: LibraryDep) -> FaceOut:
    """Name one face (``person_id`` or ``name``); the choice sticks on later runs."""
    return FaceOut.of(lib.people.assign(face_id, body.person_id, body.name), request)


@router.post("/faces/{face_id}/unassign", response_model=FaceOut, responses=error_responses(404))
def unassign(face_id: DbInt, request: Request, lib: LibraryDep) -> FaceOut:
    """This face is nobody known; later runs will not assign it."""
    return FaceOut.of(lib.people.unassign(face_id), request)


@router.post(
    "/faces/{face_id}/reject",
    response_model=FaceOut,
    responses=error_responses(400, 404, 413),
)
def reject(face_id: DbInt, body: RejectIn, request: Request, lib: LibraryDep) -> FaceOut:
    """Not this person: the face loses the person if it had them, and no later run gives it
    that person again (assigning it to them by hand lifts this). It stays open to the others."""
    return FaceOut.of(lib.people.reject(face_id, body.person_id), request)


# --- people ---------------------------------------------------------------------------------------


@router.get("/persons", response_model=list[PersonOut])
def list_persons(
    request: Request, lib: LibraryDep, include_hidden: bool = False
) -> list[PersonOut]:
    """People with their face counts and a face to show (hidden ones with include_hidden)."""
    return [PersonOut.of(*p, request) for p in lib.people.list_persons(include_hidden)]


@router.post(
    "/persons",
    status_code=status.HTTP_201_CREATED,
    response_model=PersonOut,
    responses=error_responses(400, 409, 413),
)
def create_person(body: PersonIn, lib: LibraryDep) -> PersonOut:
    return PersonOut.of(lib.people.create_person(body.name), 0)


@router.get("/persons/{person_id}", response_model=PersonOut, responses=error_responses(404))
def get_person(person_id: DbInt, request: Request, lib: LibraryDep) -> PersonOut:
    return PersonOut.of(*lib.people.person(person_id), request)


@router.patch(
    "/persons/{person_id}",
    response_model=PersonOut,
    responses=error_responses(400, 404, 409, 413),
)
def update_person(
    person_id: DbInt, body: PersonPatch, request: Request, lib: LibraryDep
) -> PersonOut:
    """Rename and/or hide a person."""
    return PersonOut.of(*lib.people.update_person(person_id, body.name, body.hidden), request)


@router.delete(
    "/persons/{person_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
def delete_person(person_id: DbInt, lib: LibraryDep) -> Response:
    lib.people.delete_person(person_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/persons/{person_id}/merge",
    response_model=PersonOut,
    responses=error_responses(400, 404, 409, 413),
)
def merge(person_id: DbInt, body: MergeIn, request: Request, lib: LibraryDep) -> PersonOut:
    """Move this person's faces (and their "not this person" marks) to ``into`` and remove
    this person."""
    return PersonOut.of(*lib.people.merge(person_id, body.into), request)


@router.get(
    "/persons/{person_id}/photos", response_model=list[AssetOut], responses=error_responses(404)
)
def person_photos(
    person_id: DbInt,
    request: Request,
    lib: LibraryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> list[AssetOut]:
    return [AssetOut.of(a, request) for a in lib.people.person_photos(person_id, limit, offset)]
